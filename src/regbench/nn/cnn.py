"""The MNIST-1D authors' small 1-D CNN (Greydanus & Kobak 2020, arXiv 2011.14439; their
double-descent notebook, greydanus/mnist1d commit 9129ceb):

    Conv1d(1, c, 5, stride 2, pad 1) - ReLU - Conv1d(c, c, 3, stride 2, pad 1) - ReLU
    - Conv1d(c, c, 3, stride 2, pad 1) - ReLU - Flatten - Linear(c * L', classes)

with c = ``model.width`` channels; on MNIST-1D's 40 samples L' = 5 (40 -> 19 -> 10 -> 5).
"""

from __future__ import annotations

import math

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from regbench.errors import positive_int
from regbench.nn import MODELS
from regbench.nn.init import init_weights


class CNN1d(nn.Module):
    def __init__(self, length: int, num_classes: int, channels: int) -> None:
        super().__init__()
        c = channels
        self.features = nn.Sequential(
            nn.Conv1d(1, c, 5, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv1d(c, c, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv1d(c, c, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():  # the flattened size for this input length
            flat = self.features(torch.zeros(1, 1, length)).shape[1]
        self.head = nn.Linear(flat, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = x.reshape(x.shape[0], 1, -1).contiguous()  # (B, L) -> (B, 1, L), NCL
        return self.head(self.features(x))  # (B, c * L') -> (B, classes)


@MODELS.register("cnn1d", "mnist1d_cnn")
def build_cnn1d(cfg: DictConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    positive_int("model.width", cfg.width)
    model = CNN1d(math.prod(input_shape), num_classes, cfg.width)
    init_weights(model, cfg.init)
    return model

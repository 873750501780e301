"""MNIST-1D augmentation on batched tensors: random shift, amplitude scale, noise.

MNIST-1D (Greydanus & Kobak 2020, arXiv 2011.14439) builds each signal from a template
by shifting, scaling, adding noise; these transforms draw fresh versions of the same
nuisances for every training sample. Input x is (B, L) or (B, C, L); ops act on the
last dim, all vectorized (no per-sample Python loop):

- shift: circular shift by an integer in ``[-max_shift, max_shift]`` per sample;
- scale: amplitude multiplied by ``U(1 - scale, 1 + scale)`` per sample;
- noise: additive ``N(0, noise^2)`` per element.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch import Tensor

from regbench.errors import ConfigError, in_range
from regbench.reg import REGULARIZERS


def random_shift(x: Tensor, max_shift: int) -> Tensor:
    if max_shift == 0:
        return x
    b, length = x.shape[0], x.shape[-1]
    shift = torch.randint(-max_shift, max_shift + 1, (b, 1), device=x.device)  # (B, 1)
    idx = (torch.arange(length, device=x.device).view(1, -1) - shift) % length  # (B, L)
    idx = idx.view(b, *([1] * (x.dim() - 2)), length).expand_as(x)
    return x.gather(-1, idx)  # out[..., i] = x[..., i - shift]


def random_scale(x: Tensor, scale: float) -> Tensor:
    if scale == 0.0:
        return x
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    return x * torch.empty(shape, dtype=x.dtype, device=x.device).uniform_(1 - scale, 1 + scale)


def add_noise(x: Tensor, std: float) -> Tensor:
    return x if std == 0.0 else x + std * torch.randn_like(x)


class Augment1d:
    """Batch transform ``(x, target) -> (augmented x, target)``."""

    def __init__(self, max_shift: int = 0, scale: float = 0.0, noise: float = 0.0) -> None:
        self.max_shift, self.scale, self.noise = int(max_shift), float(scale), float(noise)

    def __call__(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        x = random_shift(x, self.max_shift)
        x = random_scale(x, self.scale)
        return add_noise(x, self.noise), target

    def __repr__(self) -> str:
        return f"Augment1d(max_shift={self.max_shift}, scale={self.scale:g}, noise={self.noise:g})"


@REGULARIZERS.register("augment1d", "augment_1d")
def add_augment1d(entry: DictConfig, bundle, key: str) -> None:
    max_shift = entry.max_shift
    if not isinstance(max_shift, int) or isinstance(max_shift, bool) or max_shift < 0:
        raise ConfigError(f"{key}.max_shift={max_shift!r} is not valid; it must be an integer >= 0")
    in_range(f"{key}.scale", entry.scale, 0.0, 1.0, hi_open=True)
    in_range(f"{key}.noise", entry.noise, 0.0)
    bundle.transforms.append(Augment1d(max_shift, entry.scale, entry.noise))

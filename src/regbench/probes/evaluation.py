"""Accuracy of a model on re-iterable (x, y) batches, in eval mode, under whatever
forward hooks the probe has put on it."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

Batches = Iterable[tuple[Tensor, Tensor]]

#: the activation layers of the catalogue's models (``model.act``): their outputs are the
#: hidden units the probes ablate and measure (``identity`` has none)
ACTIVATIONS = (nn.ReLU, nn.GELU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.ELU, nn.SiLU)


def activation_layers(model: nn.Module) -> list[nn.Module]:
    """Every activation layer of ``model``, in module order."""
    return [m for m in model.modules() if isinstance(m, ACTIVATIONS)]


@torch.no_grad()
def eval_accuracy(model: nn.Module, data: Batches) -> float:
    """Fraction of correct argmax predictions, the model in eval mode (restored after)."""
    was_training = model.training
    model.eval()
    correct, n = 0, 0
    try:
        for x, y in data:
            correct += int((model(x).argmax(1) == y).sum())
            n += len(y)
    finally:
        model.train(was_training)
    return correct / max(n, 1)

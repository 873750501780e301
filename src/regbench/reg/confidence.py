"""Confidence penalty: Pereyra, Tucker, Chorowski, Kaiser, Hinton 2017 (arXiv 1701.06548).

Penalise confident output distributions by subtracting the entropy of the predictions
from the loss (their eq. 2):

    L = CE(t, p) - beta * H(p),    H(p) = -sum_k p_k log p_k,   p = softmax(logits)

averaged over the batch. The term added to the data loss, logged as
``train/reg/<name>``, is ``-beta * mean_b H(p_b)``: it lies in ``[-beta log K, 0]``. The
paper reports beta from 0.1 to a few units depending on the task (their section 4); the
config default is 0.1. A loss term that needs the logits: it plugs in through the
penalty hook of :mod:`regbench.reg.bundle` like any other; its stacked form is the same
formula with the classes on dim 1 of (S, K, B).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from regbench.errors import in_range
from regbench.reg import REGULARIZERS
from regbench.reg.stacked import PerModel


def entropy(logits: Tensor, class_dim: int = 1) -> Tensor:
    """Entropy (nats) of softmax(logits) over ``class_dim``: (B, K) -> (B,)."""
    logp = torch.log_softmax(logits, dim=class_dim)
    return -(logp.exp() * logp).sum(class_dim)


class ConfidencePenalty:
    per_model = ("beta",)

    def __init__(self, beta: float) -> None:
        self.beta = beta

    def __call__(self, model: nn.Module, logits: Tensor, targets: Tensor, step: int) -> Tensor:
        return -self.beta * entropy(logits).mean(-1)

    @classmethod
    def stacked(cls, members: Sequence[ConfidencePenalty]) -> StackedConfidencePenalty:
        return StackedConfidencePenalty(members)

    def __repr__(self) -> str:
        return f"ConfidencePenalty(beta={self.beta:g})"


class StackedConfidencePenalty:
    """Per-model ``-beta * mean_b H(p_b)`` (S,) of logits (S, B, K)."""

    def __init__(self, members: Sequence[ConfidencePenalty]) -> None:
        self.beta = PerModel([m.beta for m in members])

    def __call__(self, stacked, logits: Tensor, targets: Tensor, step: int) -> Tensor:
        h = entropy(logits.transpose(1, 2), 1)  # (S, B): classes on dim 1, as smoothing
        return -self.beta.on(logits) * h.mean(-1)


@REGULARIZERS.register("confidence_penalty", "confidence")
def add_confidence_penalty(entry: DictConfig, bundle, key: str) -> None:
    in_range(f"{key}.beta", entry.beta, 0.0)
    bundle.penalties[key.split(".", 1)[1]] = ConfidencePenalty(float(entry.beta))

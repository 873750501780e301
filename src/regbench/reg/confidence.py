"""Confidence penalty: Pereyra, Tucker, Chorowski, Kaiser, Hinton 2017 (arXiv 1701.06548).

Penalise confident output distributions by subtracting the entropy of the predictions
from the loss (their eq. 2):

    L = CE(t, p) - beta * H(p),    H(p) = -sum_k p_k log p_k,   p = softmax(logits)

averaged over the batch. The term added to the data loss, logged as
``train/reg/<name>``, is ``-beta * mean_b H(p_b)``: it lies in ``[-beta log K, 0]``. The
paper reports beta from 0.1 to a few units depending on the task (their section 4); the
config default is 0.1. A loss term that needs the logits: it plugs in through the
penalty hook of :mod:`regbench.reg.bundle` like any other.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from regbench.errors import in_range
from regbench.reg import REGULARIZERS


def entropy(logits: Tensor) -> Tensor:
    """Entropy (nats) of softmax(logits) per row: (B, K) -> (B,)."""
    logp = torch.log_softmax(logits, dim=1)
    return -(logp.exp() * logp).sum(1)


class ConfidencePenalty:
    def __init__(self, beta: float) -> None:
        self.beta = beta

    def __call__(self, model: nn.Module, logits: Tensor, targets: Tensor, step: int) -> Tensor:
        return -self.beta * entropy(logits).mean()

    def __repr__(self) -> str:
        return f"ConfidencePenalty(beta={self.beta:g})"


@REGULARIZERS.register("confidence_penalty", "confidence")
def add_confidence_penalty(entry: DictConfig, bundle, key: str) -> None:
    in_range(f"{key}.beta", entry.beta, 0.0)
    bundle.penalties[key.split(".", 1)[1]] = ConfidencePenalty(float(entry.beta))

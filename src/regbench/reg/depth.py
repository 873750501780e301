"""Stochastic depth: drop whole residual branches per sample.

Huang, Sun, Liu, Sedra, Weinberger, "Deep Networks with Stochastic Depth", ECCV 2016
(arXiv 1603.09382). Block ``l`` of ``L`` keeps its residual branch with *survival*
probability ``p_l = 1 - (l / L) (1 - p_L)`` (linear decay, eq. 4), so the first block
almost always survives and the last survives with ``p_L`` (0.5 in the paper).

Convention (as in the paper, not timm's): in training the branch is kept with
probability ``p`` and *not* rescaled; at test time it is multiplied by ``p``:

    train: x + b * f(x),  b ~ Bernoulli(p) per sample
    test:  x + p * f(x)

``survival_prob`` is a *keep* probability (unlike the dropout rates in config, which
are drop probabilities).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from regbench.errors import in_range, positive_int


def drop_path(x: Tensor, survival: float, training: bool) -> Tensor:
    """The branch output ``x`` (B, ...) kept per sample with prob. ``survival`` in
    training (no rescaling), scaled by ``survival`` at test."""
    if survival >= 1.0:
        return x
    if not training:
        return x * survival
    # One Bernoulli draw per sample, broadcast over the other dims: (B, 1, ..., 1).
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    keep = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(survival)
    return x * keep


class DropPath(nn.Module):
    """Module form of :func:`drop_path`; wrap a residual branch's output with it."""

    stochastic = True  # put in training mode by Monte-Carlo inference (reg/inference.py)

    def __init__(self, survival_prob: float) -> None:
        super().__init__()
        in_range("survival_prob", survival_prob, 0.0, 1.0, lo_open=True)
        self.survival_prob = float(survival_prob)

    def forward(self, x: Tensor) -> Tensor:
        return drop_path(x, self.survival_prob, self.training)

    def extra_repr(self) -> str:
        return f"survival_prob={self.survival_prob:g}"


def linear_decay_survival(num_blocks: int, p_last: float, key: str = "p_last") -> list[float]:
    """``[p_1, ..., p_L]`` with ``p_l = 1 - (l / L)(1 - p_last)`` (Huang et al., eq. 4).
    ``key`` names the config entry of ``p_last`` in the error for a bad value."""
    positive_int("num_blocks", num_blocks)
    in_range(key, p_last, 0.0, 1.0, lo_open=True)
    return [1.0 - (i / num_blocks) * (1.0 - p_last) for i in range(1, num_blocks + 1)]

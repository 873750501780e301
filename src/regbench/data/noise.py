"""Label noise for the double-descent studies (Nakkiran et al. 2019, arXiv 1912.02292)."""

from __future__ import annotations

import torch
from torch import Tensor


def corrupt_labels(
    y: Tensor, fraction: float, num_classes: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Replace exactly ``round(fraction * n)`` labels, chosen at random, by a different
    class drawn uniformly from the other ``num_classes - 1``.

    Returns the new labels and a boolean mask of the replaced positions.
    """
    n = len(y)
    k = int(round(float(fraction) * n))
    noisy = torch.zeros(n, dtype=torch.bool)
    if k == 0:
        return y.clone(), noisy
    idx = torch.randperm(n, generator=generator)[:k]
    shift = torch.randint(1, num_classes, (k,), generator=generator)
    out = y.clone()
    out[idx] = (y[idx] + shift) % num_classes
    noisy[idx] = True
    return out, noisy

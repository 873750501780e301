"""Label noise for the double-descent studies (Nakkiran et al. 2019, arXiv 1912.02292).

Two procedures (``data.label_noise_mode``):

- ``replace``: exactly ``round(fraction * n)`` labels, chosen at random, replaced by a
  different class (so exactly that fraction is wrong);
- ``resample``: each label, with probability ``fraction``, replaced by a class drawn
  uniformly from all ``num_classes`` (so about ``fraction * (1 - 1/num_classes)`` end up
  wrong): the MNIST-1D authors' deep-double-descent notebook (greydanus/mnist1d,
  notebooks/deep-double-descent.ipynb, commit 9129ceb).
"""

from __future__ import annotations

import torch
from torch import Tensor

MODES = ("replace", "resample")


def corrupt_labels(
    y: Tensor,
    fraction: float,
    num_classes: int,
    generator: torch.Generator,
    mode: str = "replace",
) -> tuple[Tensor, Tensor]:
    """Label noise of ``mode`` (see the module docstring).

    Returns the new labels and a boolean mask of the positions whose label is now wrong.
    """
    if mode == "resample":
        return _resample(y, fraction, num_classes, generator)
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


def _resample(
    y: Tensor, fraction: float, num_classes: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    n = len(y)
    hit = torch.rand(n, generator=generator) < float(fraction)
    drawn = torch.randint(0, num_classes, (n,), generator=generator)
    out = torch.where(hit, drawn, y)
    return out, out != y

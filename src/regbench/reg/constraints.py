"""Constraints projected after every optimizer step (under ``torch.no_grad``).

- max_norm: every unit's incoming weight vector has L2 norm <= c (Srivastava et al.
  2014, JMLR 15(56), section 5.1; they use c = 3-4 with dropout). For a linear weight
  (out, in) a unit is a row; for a conv weight (out, in, *k) it is a whole filter.
  Rows above the bound are rescaled onto the sphere of radius c, the others untouched.
- frobenius_bound: every weight matrix (or conv kernel tensor) has Frobenius norm <= c,
  rescaled as a whole when above.

Both cover parameters with ``ndim > 1`` (linear and conv weights, the classifier
included); biases and normalization parameters are never constrained.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from regbench.errors import in_range
from regbench.reg import REGULARIZERS
from regbench.reg.penalties import selected_params


def _weights(model: nn.Module) -> list[nn.Parameter]:
    return selected_params(model, "weights")  # linear/conv weights (ndim > 1), as penalties


def unit_norms(w: Tensor) -> Tensor:
    """L2 norm of each unit's incoming weights: (out, ...) -> (out,)."""
    return w.detach().flatten(1).norm(dim=1)


@torch.no_grad()
def max_norm_(model: nn.Module, c: float) -> None:
    for w in _weights(model):
        norms = unit_norms(w)  # (out,)
        # scale = min(1, c / norm); eps keeps all-zero rows at zero without NaN.
        scale = (c / norms.clamp_min(1e-12)).clamp_max(1.0)
        w.mul_(scale.view(-1, *([1] * (w.dim() - 1))))


@torch.no_grad()
def frobenius_bound_(model: nn.Module, c: float) -> None:
    for w in _weights(model):
        norm = w.norm()
        w.mul_((c / norm.clamp_min(1e-12)).clamp_max(1.0))


def _bound(entry: DictConfig, key: str) -> float:
    c = entry.c
    in_range(f"{key}.c", c, 0.0, None, lo_open=True)
    return float(c)


@REGULARIZERS.register("max_norm", "maxnorm")
def add_max_norm(entry: DictConfig, bundle, key: str) -> None:
    c = _bound(entry, key)
    bundle.constraints.append(lambda model: max_norm_(model, c))


@REGULARIZERS.register("frobenius_bound", "frobenius", "fro_bound")
def add_frobenius_bound(entry: DictConfig, bundle, key: str) -> None:
    c = _bound(entry, key)
    bundle.constraints.append(lambda model: frobenius_bound_(model, c))

"""Constraints projected after every optimizer step (under ``torch.no_grad``).

- max_norm: every unit's incoming weight vector has L2 norm <= c (Srivastava et al.
  2014, JMLR 15(56), section 5.1; they use c = 3-4 with dropout). For a linear weight
  (out, in) a unit is a row; for a conv weight (out, in, *k) it is a whole filter.
  Rows above the bound are rescaled onto the sphere of radius c, the others untouched.
- frobenius_bound: every weight matrix (or conv kernel tensor) has Frobenius norm <= c,
  rescaled as a whole when above.

Both cover parameters with ``ndim > 1`` (linear and conv weights, the classifier
included); biases and normalization parameters are never constrained. The projections
take ``lead`` model axes (0 alone, 1 stacked: weights (S, out, ...), bounds (S,)), so a
batched group runs the same code.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from regbench.errors import in_range
from regbench.reg import REGULARIZERS
from regbench.reg.penalties import selected, selected_params
from regbench.reg.stacked import PerModel


def _bound(c: float | Tensor, like: Tensor) -> float | Tensor:
    """A bound per model (S,) as (S, 1, ..., 1) over ``like``; a float stays a float."""
    return c if not isinstance(c, Tensor) else c.view(-1, *([1] * (like.dim() - 1)))


def unit_norms(w: Tensor, lead: int = 0) -> Tensor:
    """L2 norm of each unit's incoming weights: (*lead, out, ...) -> (*lead, out)."""
    return w.detach().flatten(lead + 1).norm(dim=-1)


@torch.no_grad()
def max_norm_(weights: Sequence[Tensor], c: float | Tensor, lead: int = 0) -> None:
    for w in weights:
        norms = unit_norms(w, lead)  # (*lead, out)
        # scale = min(1, c / norm); eps keeps all-zero rows at zero without NaN.
        scale = (_bound(c, norms) / norms.clamp_min(1e-12)).clamp_max(1.0)
        w.mul_(scale.view(*scale.shape, *([1] * (w.dim() - scale.dim()))))


@torch.no_grad()
def frobenius_bound_(weights: Sequence[Tensor], c: float | Tensor, lead: int = 0) -> None:
    for w in weights:
        norm = w.flatten(lead).norm(dim=-1)  # () or (S,)
        scale = (c / norm.clamp_min(1e-12)).clamp_max(1.0)
        w.mul_(scale.view(*scale.shape, *([1] * (w.dim() - scale.dim()))))


class Constraint:
    """A projection after every optimizer step onto ``norm <= c`` (see the docstring)."""

    per_model = ("c",)
    project = staticmethod(max_norm_)
    name = ""

    def __init__(self, c: float) -> None:
        self.c = c

    def __call__(self, model: nn.Module) -> None:
        self.project(selected_params(model, "weights"), self.c)

    @classmethod
    def stacked(cls, members: Sequence[Constraint]) -> StackedConstraint:
        return StackedConstraint(members)

    def __repr__(self) -> str:
        return f"{self.name}(c={self.c:g})"


class MaxNorm(Constraint):
    name = "max_norm"
    project = staticmethod(max_norm_)


class FrobeniusBound(Constraint):
    name = "frobenius_bound"
    project = staticmethod(frobenius_bound_)


class StackedConstraint:
    """S models' projection of stacked parameters ``stacked.params`` (S, *shape), each
    model's own bound."""

    def __init__(self, members: Sequence[Constraint]) -> None:
        self.project = members[0].project
        self.c = PerModel([m.c for m in members])

    def __call__(self, stacked) -> None:
        weights = selected(stacked.params, "weights", lead=1)
        self.project(weights, self.c.on(weights[0]), lead=1)


def _bound_of(entry: DictConfig, key: str) -> float:
    c = entry.c
    in_range(f"{key}.c", c, 0.0, None, lo_open=True)
    return float(c)


@REGULARIZERS.register("max_norm", "maxnorm")
def add_max_norm(entry: DictConfig, bundle, key: str) -> None:
    bundle.constraints.append(MaxNorm(_bound_of(entry, key)))


@REGULARIZERS.register("frobenius_bound", "frobenius", "fro_bound")
def add_frobenius_bound(entry: DictConfig, bundle, key: str) -> None:
    bundle.constraints.append(FrobeniusBound(_bound_of(entry, key)))

"""Loss penalties: L2 (coupled), L1 and elastic net, added to the data loss.

- l2: ``strength * sum w^2`` (Tikhonov; Krogh & Hertz 1992). Note the optimizer's
  ``weight_decay`` on SGD adds ``wd * w`` to the gradient, i.e. L2 with strength wd/2.
- l1: ``strength * sum |w|`` (Tibshirani 1996); its subgradient is constant in size, so
  it drives small weights towards zero, where L2 only shrinks them proportionally.
- elastic_net: ``strength * (l1_ratio * sum |w| + (1 - l1_ratio) * sum w^2)``
  (Zou & Hastie 2005).

``params: weights`` (default) covers parameters with ``ndim > 1`` (linear and conv
weights), leaving biases and normalization parameters free; ``params: all`` covers every
parameter. Each penalty is logged as ``train/reg/<entry name>``.

The formulas take ``lead``, the number of leading model axes: 0 for one model, 1 for the
stacked form (parameters (S, *shape), one value per model), so both forms are one code.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from regbench.errors import choice, in_range
from regbench.reg import REGULARIZERS
from regbench.reg.stacked import PerModel

PARAM_SETS = ("weights", "all")


def selected(params: Sequence[Tensor], which: str, lead: int = 0) -> list[Tensor]:
    """The parameters a penalty/constraint covers: ``weights`` (more than one dimension
    per model: linear and conv weights) or ``all``."""
    return [p for p in params if which == "all" or p.dim() - lead > 1]


def selected_params(model: nn.Module, which: str) -> list[nn.Parameter]:
    """Trainable parameters of ``model`` a penalty/constraint covers."""
    return selected([p for p in model.parameters() if p.requires_grad], which)


def _per_model(t: Tensor, lead: int) -> Tensor:
    """Sum over all but the ``lead`` leading axes: a scalar, or (S,) per model."""
    return t.sum(tuple(range(lead, t.dim())))


def l1_norm(params: Sequence[Tensor], lead: int = 0) -> Tensor:
    return torch.stack([_per_model(p.abs(), lead) for p in params]).sum(0)


def squared_l2(params: Sequence[Tensor], lead: int = 0) -> Tensor:
    return torch.stack([_per_model(p.square(), lead) for p in params]).sum(0)


def elastic_net(params: Sequence[Tensor], ratio: float | Tensor, lead: int = 0) -> Tensor:
    return ratio * l1_norm(params, lead) + (1.0 - ratio) * squared_l2(params, lead)


class WeightPenalty:
    """``strength * norm(covered parameters)``: l1, l2 or elastic net. A weight penalty:
    only the model matters (the logits, targets and step are ignored)."""

    per_model = ("strength", "l1_ratio")

    def __init__(self, kind: str, strength: float, which: str, ratio: float = 0.5) -> None:
        self.kind, self.strength, self.which, self.ratio = kind, strength, which, ratio
        self._cache: dict[int, list[nn.Parameter]] = {}

    def norm(self, params: Sequence[Tensor], ratio: float | Tensor, lead: int) -> Tensor:
        if self.kind == "elastic_net":
            return elastic_net(params, ratio, lead)
        return (l1_norm if self.kind == "l1" else squared_l2)(params, lead)

    def __call__(self, model: nn.Module, logits: Tensor, targets: Tensor, step: int) -> Tensor:
        # The parameter list is built once per model: the per-step cost is the tensor math.
        params = self._cache.get(id(model))
        if params is None:
            params = self._cache[id(model)] = selected_params(model, self.which)
        return self.strength * self.norm(params, self.ratio, 0)

    @classmethod
    def stacked(cls, members: Sequence[WeightPenalty]) -> StackedWeightPenalty:
        return StackedWeightPenalty(members)

    def __repr__(self) -> str:
        extra = f", l1_ratio={self.ratio:g}" if self.kind == "elastic_net" else ""
        return f"{self.kind}(strength={self.strength:g}, params={self.which}{extra})"


class StackedWeightPenalty:
    """Per-model values (S,) of S models' penalty on stacked parameters ``stacked.params``
    (S, *shape; zero padding adds nothing)."""

    def __init__(self, members: Sequence[WeightPenalty]) -> None:
        self.first = members[0]
        self.strength = PerModel([m.strength for m in members])
        self.ratio = PerModel([m.ratio for m in members])

    def __call__(self, stacked, logits: Tensor, targets: Tensor, step: int) -> Tensor:
        params = selected(stacked.params, self.first.which, lead=1)
        ratio = self.ratio.on(logits)
        return self.strength.on(logits) * self.first.norm(params, ratio, 1)


def _common(entry: DictConfig, key: str) -> tuple[float, str]:
    strength = entry.strength
    in_range(f"{key}.strength", strength, 0.0)
    which = entry.params
    choice(f"{key}.params", which, PARAM_SETS)
    return float(strength), which


def _name(key: str) -> str:
    return key.split(".", 1)[1]  # "reg.l1" -> "l1"


@REGULARIZERS.register("l2", "ridge")
def add_l2(entry: DictConfig, bundle, key: str) -> None:
    bundle.penalties[_name(key)] = WeightPenalty("l2", *_common(entry, key))


@REGULARIZERS.register("l1", "lasso")
def add_l1(entry: DictConfig, bundle, key: str) -> None:
    bundle.penalties[_name(key)] = WeightPenalty("l1", *_common(entry, key))


@REGULARIZERS.register("elastic_net", "elasticnet")
def add_elastic_net(entry: DictConfig, bundle, key: str) -> None:
    strength, which = _common(entry, key)
    ratio = entry.l1_ratio
    in_range(f"{key}.l1_ratio", ratio, 0.0, 1.0)
    bundle.penalties[_name(key)] = WeightPenalty("elastic_net", strength, which, float(ratio))

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
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from regbench.errors import choice, in_range
from regbench.reg import REGULARIZERS

PARAM_SETS = ("weights", "all")


def selected_params(model: nn.Module, which: str) -> list[nn.Parameter]:
    """Trainable parameters a penalty/constraint covers: ``weights`` (ndim > 1) or ``all``."""
    params = [p for p in model.parameters() if p.requires_grad]
    return params if which == "all" else [p for p in params if p.ndim > 1]


def l1_norm(params: list[Tensor]) -> Tensor:
    return torch.stack([p.abs().sum() for p in params]).sum()


def squared_l2(params: list[Tensor]) -> Tensor:
    return torch.stack([p.square().sum() for p in params]).sum()


def _penalty(fn: Callable[[list[Tensor]], Tensor], strength: float, which: str):
    cache: dict[int, list[nn.Parameter]] = {}

    def penalty(model: nn.Module, logits: Tensor, targets: Tensor, step: int) -> Tensor:
        # A weight penalty: only the model matters. The parameter list is built once per
        # model: the per-step cost is the tensor math.
        params = cache.get(id(model))
        if params is None:
            params = cache[id(model)] = selected_params(model, which)
        return strength * fn(params)

    return penalty


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
    strength, which = _common(entry, key)
    bundle.penalties[_name(key)] = _penalty(squared_l2, strength, which)


@REGULARIZERS.register("l1", "lasso")
def add_l1(entry: DictConfig, bundle, key: str) -> None:
    strength, which = _common(entry, key)
    bundle.penalties[_name(key)] = _penalty(l1_norm, strength, which)


@REGULARIZERS.register("elastic_net", "elasticnet")
def add_elastic_net(entry: DictConfig, bundle, key: str) -> None:
    strength, which = _common(entry, key)
    ratio = entry.l1_ratio
    in_range(f"{key}.l1_ratio", ratio, 0.0, 1.0)
    ratio = float(ratio)

    def mixed(params: list[Tensor]) -> Tensor:
        return ratio * l1_norm(params) + (1.0 - ratio) * squared_l2(params)

    bundle.penalties[_name(key)] = _penalty(mixed, strength, which)

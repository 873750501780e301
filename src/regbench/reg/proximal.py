"""L1 by proximal steps: soft-thresholding after every optimizer step (a constraint-kind
regularizer, ``reg=[l1_prox]``).

After each step every covered weight becomes ``sign(w) * max(|w| - strength * lr, 0)``,
the proximal operator of ``lr * strength * ||w||_1`` (proximal gradient: Beck & Teboulle
2009; on stochastic gradients, FOBOS: Duchi & Singer 2009, JMLR 10:2899). Unlike the
subgradient of ``reg=[l1]``, whose steps of fixed size jump over zero, it sets weights
exactly to 0, as the lasso does (Tibshirani 1996).

The threshold needs the step size: ``reg.l1_prox.lr`` (default ``${optim.lr}``). It is the
proximal step only for a fixed step size, so any scheduler but ``constant`` is refused.
With momentum the gradient part moves along the momentum buffer and the threshold stays
``strength * lr`` per step (proximal heavy ball, not an exact proximal gradient step):
over a long run the gradient's effective step is ``lr / (1 - momentum)``.

``params: weights`` (default) covers linear and conv weights (ndim > 1); ``all`` every
parameter. One single-model form; a batched group runs it one by one.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch import nn

from regbench.errors import ConfigError, choice, in_range
from regbench.reg import REGULARIZERS
from regbench.reg.penalties import PARAM_SETS, selected_params


@torch.no_grad()
def soft_threshold_(params: list[nn.Parameter], threshold: float) -> None:
    """In place: w <- sign(w) * max(|w| - threshold, 0)."""
    for w in params:
        w.copy_(w.sign() * (w.abs() - threshold).clamp_min(0))


class L1Prox:
    """Soft-thresholding by ``strength * lr`` after every optimizer step."""

    single_reason = "soft-thresholding has no stacked form (runs one by one)"

    def __init__(self, strength: float, lr: float, which: str) -> None:
        self.threshold, self.which = strength * lr, which
        self._params: dict[int, list[nn.Parameter]] = {}

    def __call__(self, model: nn.Module) -> None:
        params = self._params.get(id(model))
        if params is None:  # built once per model: the per-step cost is the tensor math
            params = self._params[id(model)] = selected_params(model, self.which)
        soft_threshold_(params, self.threshold)

    def __repr__(self) -> str:
        return f"l1_prox(threshold={self.threshold:g})"


@REGULARIZERS.register("l1_prox", "prox_l1")
def add_l1_prox(entry: DictConfig, bundle, key: str) -> None:
    in_range(f"{key}.strength", entry.strength, 0.0)
    in_range(f"{key}.lr", entry.lr, 0.0, lo_open=True)
    choice(f"{key}.params", entry.params, PARAM_SETS)
    schedule = entry.get("scheduler", "constant")
    if schedule != "constant":
        raise ConfigError(
            f"{key} needs scheduler=constant (its threshold strength * lr assumes one step "
            f"size); got scheduler={schedule}"
        )
    bundle.constraints.append(L1Prox(float(entry.strength), float(entry.lr), entry.params))

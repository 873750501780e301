"""Weight initialisation schemes chosen by name (``model.init``)."""

from __future__ import annotations

from torch import nn

from regbench.registry import Registry

INITS = Registry("init")


def _apply(model: nn.Module, fn) -> None:
    for m in model.modules():
        if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d):
            fn(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


@INITS.register("kaiming", "he")
def kaiming(model: nn.Module) -> None:
    """He et al. 2015 (arXiv 1502.01852): N(0, 2 / fan_in), for ReLU networks."""
    _apply(model, lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"))


@INITS.register("xavier", "glorot")
def xavier(model: nn.Module) -> None:
    """Glorot & Bengio 2010: U(-a, a) with a = sqrt(6 / (fan_in + fan_out))."""
    _apply(model, nn.init.xavier_uniform_)


@INITS.register("default", "torch", "pytorch")
def default(model: nn.Module) -> None:
    """PyTorch's own layer defaults (already applied at construction)."""


def init_weights(model: nn.Module, name: str) -> None:
    INITS.get(name, "model.init")(model)

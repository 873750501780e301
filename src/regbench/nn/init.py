"""Weight initialisation schemes chosen by name (``model.init``), and a scale on top
(``model.init_scale``)."""

from __future__ import annotations

import torch
from torch import nn

from regbench.errors import in_range
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


def scale_init(model: nn.Module, scale: float) -> None:
    """Multiply every linear and conv weight by ``scale`` after its scheme
    (``model.init_scale``; 1.0 leaves it as drawn): the knob of a careless or deliberate
    init, e.g. He init with its standard deviation times 0.25 .. 4. Biases (zero under
    every named scheme) and norm parameters are left alone. Ioffe & Szegedy 2015 (arXiv
    1502.03167, sec. 3.3): with BatchNorm after a layer its output does not change with
    the layer's weight scale, while a plain ReLU net of depth L scales its logits by
    ``scale**L``."""
    in_range("model.init_scale", scale, 0.0, None, lo_open=True)
    if scale == 1.0:
        return
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d):
                m.weight.mul_(scale)

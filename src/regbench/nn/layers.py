"""Layer factories chosen by name: normalization, activation, and the order-spec slots.

Each slot of a block (``linear``, ``conv``, ``norm``, ``act``, ``dropout``, ...) is a
factory ``(spec, c_in, c_out) -> (module, channels_after)``. ``dims`` says what the
features look like: 0 = (B, C) vectors, 1 = (B, C, L) signals, 2 = (B, C, H, W) images.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from regbench.errors import ConfigError
from regbench.reg.dropout import make_dropout
from regbench.registry import Registry


@dataclass
class LayerSpec:
    """Everything a slot factory may need; filled from the model config."""

    dims: int = 0
    norm: str = "none"
    act: str = "relu"
    dropout: float = 0.0
    dropout_kind: str = "bernoulli"
    dropconnect: float = 0.0
    norm_groups: int = 8
    norm_momentum: float = 0.1
    norm_eps: float = 1e-5
    norm_affine: bool = True
    kernel_size: int = 3
    stride: int = 1
    bias: bool = True


# --- normalization ------------------------------------------------------------------
NORMS = Registry("norm")


@NORMS.register("none", "identity", "no")
def _no_norm(c: int, spec: LayerSpec) -> nn.Module:
    return nn.Identity()


@NORMS.register("batch", "batchnorm", "bn")
def _batch_norm(c: int, spec: LayerSpec) -> nn.Module:
    cls = nn.BatchNorm2d if spec.dims == 2 else nn.BatchNorm1d
    return cls(c, eps=spec.norm_eps, momentum=spec.norm_momentum, affine=spec.norm_affine)


@NORMS.register("layer", "layernorm", "ln")
def _layer_norm(c: int, spec: LayerSpec) -> nn.Module:
    if spec.dims == 0:
        return nn.LayerNorm(c, eps=spec.norm_eps, elementwise_affine=spec.norm_affine)
    # Over (C, *spatial) for every sample, as in Ba et al. 2016 applied to conv nets.
    return nn.GroupNorm(1, c, eps=spec.norm_eps, affine=spec.norm_affine)


@NORMS.register("group", "groupnorm", "gn")
def _group_norm(c: int, spec: LayerSpec) -> nn.Module:
    if c % spec.norm_groups:
        raise ConfigError(
            f"model.norm_groups={spec.norm_groups} does not divide the layer width {c}; "
            "choose a divisor of every width"
        )
    return nn.GroupNorm(spec.norm_groups, c, eps=spec.norm_eps, affine=spec.norm_affine)


@NORMS.register("instance", "instancenorm", "in")
def _instance_norm(c: int, spec: LayerSpec) -> nn.Module:
    if spec.dims == 0:
        raise ConfigError(
            "model.norm='instance' needs spatial features (ResNet/conv models); "
            "for an MLP choose one of: batch, group, layer, none"
        )
    cls = nn.InstanceNorm2d if spec.dims == 2 else nn.InstanceNorm1d
    return cls(c, eps=spec.norm_eps, affine=spec.norm_affine)


# --- activations --------------------------------------------------------------------
ACTS = Registry("activation")
ACTS.register("relu")(lambda: nn.ReLU(inplace=False))
ACTS.register("gelu")(nn.GELU)
ACTS.register("tanh")(nn.Tanh)
ACTS.register("sigmoid", "logistic")(nn.Sigmoid)
ACTS.register("leaky_relu", "lrelu")(lambda: nn.LeakyReLU(0.01))
ACTS.register("elu")(nn.ELU)
ACTS.register("silu", "swish")(nn.SiLU)
ACTS.register("identity", "linear_act", "none")(nn.Identity)


# --- order-spec slots ---------------------------------------------------------------
LAYERS = Registry("block layer")


@LAYERS.register("linear", "fc", "dense")
def _linear(spec: LayerSpec, c_in: int, c_out: int) -> tuple[nn.Module, int]:
    if spec.dims != 0:
        raise ConfigError("model.block: 'linear' is for MLPs; conv models use 'conv'")
    if spec.dropconnect > 0:
        from regbench.reg.dropconnect import DropConnectLinear

        return DropConnectLinear(c_in, c_out, spec.dropconnect, bias=spec.bias), c_out
    return nn.Linear(c_in, c_out, bias=spec.bias), c_out


@LAYERS.register("norm", "normalization")
def _norm_slot(spec: LayerSpec, c_in: int, c_out: int) -> tuple[nn.Module, int]:
    return NORMS.get(spec.norm, "model.norm")(c_in, spec), c_in


@LAYERS.register("act", "activation")
def _act_slot(spec: LayerSpec, c_in: int, c_out: int) -> tuple[nn.Module, int]:
    return ACTS.get(spec.act, "model.act")(), c_in


@LAYERS.register("dropout", "drop")
def _dropout_slot(spec: LayerSpec, c_in: int, c_out: int) -> tuple[nn.Module, int]:
    return make_dropout(spec.dropout_kind, spec.dropout), c_in


def build_layers(order: list[str], spec: LayerSpec, c_in: int, c_out: int) -> nn.Sequential:
    """Build ``order`` as a Sequential. The first weight layer maps c_in -> c_out (with
    ``spec.stride``); later ones map c_out -> c_out with stride 1."""
    mods: list[nn.Module] = []
    c = c_in
    first_weight = True
    for name in order:
        canonical = LAYERS.canonical(name, "model.block")
        weight_layer = canonical in WEIGHT_LAYERS
        layer_spec = spec if (first_weight or not weight_layer) else _stride1(spec)
        module, c_after = LAYERS.get(canonical)(layer_spec, c, c_out)
        if weight_layer:
            first_weight = False
        c = c_after
        mods.append(module)
    return nn.Sequential(*mods)


#: slots that carry weights and change the channel count
WEIGHT_LAYERS = {"linear", "conv"}


def _stride1(spec: LayerSpec) -> LayerSpec:
    from dataclasses import replace

    return replace(spec, stride=1)

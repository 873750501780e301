"""Layer factories chosen by name: normalization, activation, and the order-spec slots.

Each slot of a block (``linear``, ``conv``, ``norm``, ``act``, ``dropout``, ...) is a
factory ``(spec, c_in, c_out) -> (module, channels_after)``. ``dims`` says what the
features look like: 0 = (B, C) vectors, 1 = (B, C, L) signals, 2 = (B, C, H, W) images.
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig, ListConfig
from torch import nn

from regbench.errors import ConfigError, in_range, positive_int
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


@LAYERS.register("conv", "convolution")
def _conv(spec: LayerSpec, c_in: int, c_out: int) -> tuple[nn.Module, int]:
    """Conv1d on (B, C, L) or Conv2d on (B, C, H, W); 'same' padding k // 2."""
    if spec.dims not in (1, 2):
        raise ConfigError("model.block: 'conv' needs spatial features; MLPs use 'linear'")
    if spec.dropconnect > 0:
        raise ConfigError(
            "model.dropconnect applies to 'linear' layers only; set it to 0 for conv models"
        )
    cls = nn.Conv1d if spec.dims == 1 else nn.Conv2d
    k = spec.kernel_size
    return cls(c_in, c_out, k, stride=spec.stride, padding=k // 2, bias=spec.bias), c_out


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


# --- the order spec from the model config ------------------------------------------
def check_block(block: list[str], required: str) -> list[str]:
    if not block or isinstance(block, str):
        raise ConfigError(f"model.block={block!r} must be a non-empty list of layer names")
    names = [LAYERS.canonical(n, "model.block") for n in block]
    if required not in names:
        raise ConfigError(f"model.block={list(block)} must contain '{required}'")
    return names


def layer_spec(cfg: DictConfig, dims: int, per_block_dropout: bool = False) -> LayerSpec:
    """LayerSpec from the model config, validating the shared keys. A list-valued
    ``model.dropout`` is accepted only by builders passing ``per_block_dropout=True``
    (they set the rate per block with :func:`dropout_rates`)."""
    dropout = cfg.dropout
    if isinstance(dropout, ListConfig | list | tuple):
        if not per_block_dropout:
            raise ConfigError(
                f"model.dropout={list(dropout)}: per-block rates are supported by the mlp "
                f"and resmlp models, not model.name={cfg.get('name')!r}; give a single rate"
            )
        dropout = 0.0  # replaced per block
    for key in ("dropout", "input_dropout", "head_dropout", "dropconnect"):
        value = dropout if key == "dropout" else cfg.get(key, 0.0)
        in_range(f"model.{key}", value, 0.0, 1.0, hi_open=True)
    positive_int("model.norm_groups", cfg.norm_groups)
    in_range("model.norm_momentum", cfg.norm_momentum, 0.0, 1.0)
    in_range("model.norm_eps", cfg.norm_eps, 0.0, None, lo_open=True)
    return LayerSpec(
        dims=dims,
        norm=cfg.norm,
        act=cfg.act,
        dropout=float(dropout),
        dropout_kind=cfg.dropout_kind,
        dropconnect=float(cfg.dropconnect),
        norm_groups=int(cfg.norm_groups),
        norm_momentum=float(cfg.norm_momentum),
        norm_eps=float(cfg.norm_eps),
        norm_affine=bool(cfg.norm_affine),
        bias=bool(cfg.bias),
    )

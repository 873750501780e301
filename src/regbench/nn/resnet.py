"""Residual networks in 1-D (signals) and 2-D (images), built from the order spec.

    input_dropout -> stem -> stages of residual blocks -> final -> global average pool
                  -> head_dropout -> Linear(channels, classes)

Builders (``model.name``):

- ``resnet_cifar``: the CIFAR ResNets of He et al. 2016 (arXiv 1512.03385, section 4.2):
  depth 6n+2 (20, 32, 56, 110), a 3x3 stem of ``width`` (16) channels, three stages of n
  basic blocks with widths w, 2w, 4w and strides 1, 2, 2. The published parameter counts
  (0.27M, 0.85M, 1.7M) use the zero-padding shortcut ("option A", ``shortcut: pad``).
- ``resnet18``: ResNet-18 with width multiplier k = ``width`` (Nakkiran et al. 2019,
  arXiv 1912.02292): stage widths [k, 2k, 4k, 8k], 2 basic blocks each, strides 1, 2, 2, 2,
  CIFAR stem (one 3x3 conv, no max-pool), 1x1 conv + norm shortcuts. k = 64 is the usual
  ResNet-18 (11.2M parameters with 10 classes). Post-activation (He et al. 2016) or
  pre-activation (He et al. 2016b, arXiv 1603.05027) from the order keys.
- ``wrn``: Wide ResNet WRN-d-k (Zagoruyko & Komodakis 2016, arXiv 1605.07146): depth
  d = 6n+4, widen factor k, a 16-channel stem, stages 16k, 32k, 64k of n pre-activation
  blocks ``[norm, act, conv, norm, act, dropout, conv]``, strides 1, 2, 2.

Where the layers sit is configuration: ``stem``, ``block`` (residual branch),
``after_add`` (after the sum; ``[act]`` for post-activation) and ``final`` (before
pooling; ``[norm, act]`` for pre-activation) are order specs over the same slot names
as the MLP (``conv``, ``norm``, ``act``, ``dropout``), so norm choice, dropout placement
and the diagnostics carry over unchanged.

Stochastic depth (Huang et al. 2016, arXiv 1603.09382): block l of L keeps its branch
with probability p_l = 1 - (l / L)(1 - p_L), p_L = ``survival_last`` (1 = off).

Inputs: (B, L) signals such as MNIST-1D get a channel axis, (B, 1, L), and Conv1d;
(B, C, L) use Conv1d; (B, C, H, W) images use Conv2d. ``dims`` may force 1 or 2 and
must agree with the input shape.
"""

from __future__ import annotations

from dataclasses import replace

from omegaconf import DictConfig, ListConfig
from torch import Tensor, nn

from regbench.errors import ConfigError, choice, positive_int
from regbench.nn import MODELS
from regbench.nn.init import init_weights
from regbench.nn.layers import LAYERS, NORMS, LayerSpec, build_layers, check_block, layer_spec
from regbench.nn.resnet_blocks import optional_layers, residual_block
from regbench.reg.depth import linear_decay_survival
from regbench.reg.dropout import make_dropout


class ResNet(nn.Module):
    def __init__(
        self,
        stem: nn.Module,
        stages: nn.Sequential,
        final: nn.Module,
        channels: int,
        num_classes: int,
        add_channel: bool,
        input_drop: nn.Module,
        head_drop: nn.Module,
    ) -> None:
        super().__init__()
        self.add_channel = add_channel
        self.input_drop = input_drop
        self.stem = stem
        self.stages = stages
        self.final = final
        self.head_drop = head_drop
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        if self.add_channel:
            x = x.unsqueeze(1)  # (B, L) -> (B, 1, L)
        # Contiguous NCHW / NCL whatever a transform or caller handed over: a channels-last
        # batch sends the convolutions down oneDNN's NHWC path, whose backward weights for
        # strided 1x1 convolutions with few channels is broken on AVX2 CPUs (see
        # reg/augment_image.py and docs/ARCHITECTURE.md, "Numerics"). A no-op otherwise.
        x = x.contiguous()
        x = self.final(self.stages(self.stem(self.input_drop(x))))  # (B, C, *S)
        x = x.flatten(2).mean(2)  # global average pool: (B, C)
        return self.head(self.head_drop(x))

    def blocks(self) -> list[nn.Module]:
        """The residual blocks in order (stage by stage)."""
        return [b for stage in self.stages for b in stage]


def _order(cfg: DictConfig, key: str, required: str | None) -> list[str]:
    """An order spec from ``model.<key>``; ``required`` names a slot it must contain,
    None allows any list, the empty one included."""
    value = cfg.get(key, [])
    if not isinstance(value, ListConfig | list):
        raise ConfigError(
            f"model.{key}={value!r} must be a list of layer names, e.g. [conv, norm, act]"
        )
    names = [str(n) for n in value]
    if required is None:
        return [LAYERS.canonical(n, f"model.{key}") for n in names]
    try:
        return check_block(names, required)
    except ConfigError as e:
        raise ConfigError(str(e).replace("model.block", f"model.{key}")) from None


def input_layout(cfg: DictConfig, input_shape: tuple[int, ...]) -> tuple[int, int, bool]:
    """``(dims, in_channels, add_channel)`` from the input shape and ``model.dims``."""
    want = str(cfg.dims)
    choice("model.dims", want, ("auto", "1", "2"))
    if len(input_shape) == 1:
        dims, c_in, add_channel = 1, 1, True  # (L,) signals
    elif len(input_shape) in (2, 3):
        dims, c_in, add_channel = len(input_shape) - 1, int(input_shape[0]), False
    else:
        raise ConfigError(
            f"model.name={cfg.name!r} needs (L,), (C, L) or (C, H, W) inputs, got {input_shape}"
        )
    if want != "auto" and int(want) != dims:
        raise ConfigError(
            f"model.dims={want} does not fit inputs of shape {tuple(input_shape)} "
            f"(they need dims={dims}); use model.dims=auto"
        )
    return dims, c_in, add_channel


def conv_spec(cfg: DictConfig, dims: int) -> LayerSpec:
    """The shared layer keys plus the conv ones; ``bias: auto`` = conv bias only when
    there is no norm to absorb it."""
    spec = layer_spec(cfg, dims)
    k = cfg.kernel_size
    positive_int("model.kernel_size", k)
    if k % 2 == 0:
        raise ConfigError(f"model.kernel_size={k} is not valid; it must be odd ('same' padding)")
    bias = str(cfg.bias).lower()
    choice("model.bias", bias, ("auto", "true", "false"))
    if bias == "auto":
        use_bias = NORMS.canonical(spec.norm, "model.norm") == "none"
    else:
        use_bias = bias == "true"
    return replace(spec, kernel_size=int(k), bias=use_bias)


def build_resnet(
    cfg: DictConfig,
    input_shape: tuple[int, ...],
    num_classes: int,
    stem_width: int,
    widths: list[int],
    blocks: list[int],
    strides: list[int],
) -> ResNet:
    """A ResNet with ``blocks[i]`` blocks of width ``widths[i]``, the first strided by
    ``strides[i]``; stochastic-depth survival follows the linear rule over all blocks."""
    dims, c_in, add_channel = input_layout(cfg, input_shape)
    spec = conv_spec(cfg, dims)
    stem, block = _order(cfg, "stem", "conv"), _order(cfg, "block", "conv")
    after_add, final = _order(cfg, "after_add", None), _order(cfg, "final", None)
    shortcut = str(cfg.shortcut)
    shortcut_norm = bool(cfg.shortcut_norm)
    survival = linear_decay_survival(sum(blocks), cfg.survival_last, key="model.survival_last")

    stages, c, i = [], stem_width, 0
    for width, n, stride in zip(widths, blocks, strides, strict=True):
        stage = []
        for j in range(n):
            s = stride if j == 0 else 1
            stage.append(
                residual_block(
                    block, after_add, spec, c, width, s, shortcut, shortcut_norm, survival[i]
                )
            )
            c, i = width, i + 1
        stages.append(nn.Sequential(*stage))

    model = ResNet(
        stem=build_layers(stem, spec, c_in, stem_width),
        stages=nn.Sequential(*stages),
        final=optional_layers(final, spec, c),
        channels=c,
        num_classes=num_classes,
        add_channel=add_channel,
        input_drop=make_dropout(spec.dropout_kind, float(cfg.input_dropout)),
        head_drop=make_dropout(spec.dropout_kind, float(cfg.head_dropout)),
    )
    init_weights(model, cfg.init)
    return model


def _depth(cfg: DictConfig, offset: int, model: str, examples: str) -> int:
    """n from depth = 6n + offset (three stages of n two-conv blocks)."""
    positive_int("model.depth", cfg.depth)
    n, rest = divmod(cfg.depth - offset, 6)
    if rest or n < 1:
        raise ConfigError(
            f"model.depth={cfg.depth} is not valid for {model}; it must be 6n+{offset} "
            f"with n >= 1 ({examples})"
        )
    return n


@MODELS.register("resnet_cifar", "cifar_resnet")
def build_resnet_cifar(cfg: DictConfig, input_shape: tuple[int, ...], num_classes: int) -> ResNet:
    n = _depth(cfg, 2, "resnet_cifar", "8, 14, 20, 32, 44, 56, 110")
    positive_int("model.width", cfg.width)
    w = cfg.width
    return build_resnet(cfg, input_shape, num_classes, w, [w, 2 * w, 4 * w], [n] * 3, [1, 2, 2])


@MODELS.register("resnet18", "resnet_18")
def build_resnet18(cfg: DictConfig, input_shape: tuple[int, ...], num_classes: int) -> ResNet:
    positive_int("model.width", cfg.width)
    k = cfg.width
    widths = [k, 2 * k, 4 * k, 8 * k]
    return build_resnet(cfg, input_shape, num_classes, k, widths, [2] * 4, [1, 2, 2, 2])


@MODELS.register("wrn", "wide_resnet")
def build_wrn(cfg: DictConfig, input_shape: tuple[int, ...], num_classes: int) -> ResNet:
    n = _depth(cfg, 4, "wrn", "10, 16, 22, 28, 40")
    positive_int("model.width", cfg.width)
    positive_int("model.widen", cfg.widen)
    w = cfg.width * cfg.widen
    widths = [w, 2 * w, 4 * w]
    return build_resnet(cfg, input_shape, num_classes, cfg.width, widths, [n] * 3, [1, 2, 2])

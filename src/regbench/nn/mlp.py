"""Multi-layer perceptron built from the order spec.

    input_dropout -> depth x block(order) -> head_dropout -> Linear(width, classes)

``block`` is a list of slot names, e.g. ``[linear, norm, act, dropout]`` (post-norm,
dropout after the activation) or ``[linear, dropout, norm, act]`` (dropout directly
before BatchNorm, the variance-shift case of Li et al. 2019).
"""

from __future__ import annotations

import math

from omegaconf import DictConfig
from torch import Tensor, nn

from regbench.errors import ConfigError, in_range, positive_int
from regbench.nn import MODELS
from regbench.nn.init import init_weights
from regbench.nn.layers import LAYERS, LayerSpec, build_layers
from regbench.reg.dropout import make_dropout


def layer_spec(cfg: DictConfig, dims: int) -> LayerSpec:
    """LayerSpec from the model config, validating the shared keys."""
    for key in ("dropout", "input_dropout", "head_dropout", "dropconnect"):
        in_range(f"model.{key}", cfg.get(key, 0.0), 0.0, 1.0, hi_open=True)
    positive_int("model.norm_groups", cfg.get("norm_groups", 8))
    return LayerSpec(
        dims=dims,
        norm=cfg.get("norm", "none"),
        act=cfg.get("act", "relu"),
        dropout=float(cfg.get("dropout", 0.0)),
        dropout_kind=cfg.get("dropout_kind", "bernoulli"),
        dropconnect=float(cfg.get("dropconnect", 0.0)),
        norm_groups=int(cfg.get("norm_groups", 8)),
        norm_momentum=float(cfg.get("norm_momentum", 0.1)),
        norm_eps=float(cfg.get("norm_eps", 1e-5)),
        norm_affine=bool(cfg.get("norm_affine", True)),
        bias=bool(cfg.get("bias", True)),
    )


class MLP(nn.Module):
    def __init__(
        self,
        in_features: int,
        num_classes: int,
        depth: int,
        width: int,
        block: list[str],
        spec: LayerSpec,
        input_dropout: float = 0.0,
        head_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.flatten = nn.Flatten()  # (B, *shape) -> (B, F)
        self.input_drop = make_dropout(spec.dropout_kind, input_dropout)
        self.blocks = nn.Sequential(
            *[build_layers(block, spec, in_features if i == 0 else width, width) for i in range(depth)]
        )
        self.head_drop = make_dropout(spec.dropout_kind, head_dropout)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.input_drop(self.flatten(x))
        return self.head(self.head_drop(self.blocks(x)))


def check_block(block: list[str], required: str) -> list[str]:
    if not block or isinstance(block, str):
        raise ConfigError(f"model.block={block!r} must be a non-empty list of layer names")
    names = [LAYERS.canonical(n, "model.block") for n in block]
    if required not in names:
        raise ConfigError(f"model.block={list(block)} must contain '{required}'")
    return names


@MODELS.register("mlp")
def build_mlp(cfg: DictConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    positive_int("model.depth", cfg.depth)
    positive_int("model.width", cfg.width)
    block = check_block(list(cfg.block), "linear")
    model = MLP(
        in_features=math.prod(input_shape),
        num_classes=num_classes,
        depth=cfg.depth,
        width=cfg.width,
        block=block,
        spec=layer_spec(cfg, dims=0),
        input_dropout=float(cfg.get("input_dropout", 0.0)),
        head_dropout=float(cfg.get("head_dropout", 0.0)),
    )
    init_weights(model, cfg.get("init", "kaiming"))
    return model

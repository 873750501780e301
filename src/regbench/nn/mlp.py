"""Multi-layer perceptrons built from the order spec: plain and residual.

``mlp``:    input_dropout -> depth x block(order) -> head_dropout -> Linear(width, classes)
``resmlp``: input_dropout -> Linear(in, width) -> depth x [x + DropPath_l(block(x))]
            -> final(order) -> head_dropout -> Linear(width, classes)

``block`` is a list of slot names, e.g. ``[linear, norm, act, dropout]`` (post-norm,
dropout after the activation) or ``[linear, dropout, norm, act]`` (dropout directly
before BatchNorm, the variance-shift case of Li et al. 2019, arXiv 1801.05134).

Dropout rates are *drop* probabilities (PyTorch's convention; Srivastava et al. and
Li et al. write p for the retain probability). ``model.dropout`` is one rate for every
``dropout`` slot, or a list with one rate per block; ``input_dropout`` acts on the
inputs (Srivastava et al. use drop 0.2 there), ``head_dropout`` before the classifier.

Residual blocks use stochastic depth (Huang et al. 2016, arXiv 1603.09382): block l of
L survives with p_l = 1 - (l/L)(1 - p_L), ``p_L = model.survival_last`` (a *keep*
probability; 1.0 turns it off); computed here, in the builder.
"""

from __future__ import annotations

import math
from dataclasses import replace

from omegaconf import DictConfig, ListConfig
from torch import Tensor, nn

from regbench.errors import ConfigError, choice, in_range, positive_int
from regbench.nn import MODELS
from regbench.nn.init import init_weights
from regbench.nn.layers import LAYERS, LayerSpec, build_layers, check_block, layer_spec
from regbench.reg.depth import MODES, DropPath, linear_decay_survival, uniform_survival
from regbench.reg.dropout import make_dropout


def dropout_rates(cfg: DictConfig, num_blocks: int) -> list[float]:
    """``model.dropout`` as one validated drop rate per block (a scalar is repeated)."""
    rates = cfg.dropout
    if isinstance(rates, ListConfig | list | tuple):
        if len(rates) != num_blocks:
            raise ConfigError(
                f"model.dropout={list(rates)} has {len(rates)} rates for {num_blocks} blocks; "
                "give one rate per block or a single rate"
            )
        for i, r in enumerate(rates):
            in_range(f"model.dropout[{i}]", r, 0.0, 1.0, hi_open=True)
        return [float(r) for r in rates]
    in_range("model.dropout", rates, 0.0, 1.0, hi_open=True)
    return [float(rates)] * num_blocks


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
        rates: list[float] | None = None,
    ) -> None:
        super().__init__()
        rates = rates if rates is not None else [spec.dropout] * depth
        self.flatten = nn.Flatten()  # (B, *shape) -> (B, F)
        self.input_drop = make_dropout(spec.dropout_kind, input_dropout)
        self.blocks = nn.Sequential(
            *[
                build_layers(
                    block, replace(spec, dropout=rates[i]), in_features if i == 0 else width, width
                )
                for i in range(depth)
            ]
        )
        self.head_drop = make_dropout(spec.dropout_kind, head_dropout)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.input_drop(self.flatten(x))  # (B, F)
        return self.head(self.head_drop(self.blocks(x)))  # (B, width) -> (B, classes)


class ResidualBlock(nn.Module):
    """``x + DropPath(branch(x))`` on (B, width) features. In per-batch mode a dropped
    block returns ``x`` without running its branch; ``deleted`` (set by the block-deletion
    diagnostic, Veit et al. 2016, arXiv 1605.06431) does the same at test time."""

    def __init__(self, branch: nn.Module, survival: float, mode: str = "sample") -> None:
        super().__init__()
        self.branch = branch
        self.drop_path = DropPath(survival, mode) if survival < 1.0 else nn.Identity()
        self.deleted = False

    def forward(self, x: Tensor) -> Tensor:
        if self.deleted or (isinstance(self.drop_path, DropPath) and self.drop_path.skip()):
            return x
        return x + self.drop_path(self.branch(x))


class ResMLP(nn.Module):
    def __init__(
        self,
        in_features: int,
        num_classes: int,
        width: int,
        block: list[str],
        final: list[str],
        spec: LayerSpec,
        survival: list[float],
        rates: list[float],
        input_dropout: float = 0.0,
        head_dropout: float = 0.0,
        drop_path_mode: str = "sample",
    ) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.input_drop = make_dropout(spec.dropout_kind, input_dropout)
        self.stem = nn.Linear(in_features, width)  # (B, F) -> (B, width)
        self.blocks = nn.Sequential(
            *[
                ResidualBlock(
                    build_layers(block, replace(spec, dropout=r), width, width), p, drop_path_mode
                )
                for p, r in zip(survival, rates, strict=True)
            ]
        )
        # e.g. [norm, act] closes pre-activation blocks; empty = nothing.
        self.final = build_layers(final, spec, width, width) if final else nn.Identity()
        self.head_drop = make_dropout(spec.dropout_kind, head_dropout)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(self.input_drop(self.flatten(x)))
        return self.head(self.head_drop(self.final(self.blocks(x))))


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
        spec=layer_spec(cfg, dims=0, per_block_dropout=True),
        input_dropout=float(cfg.input_dropout),
        head_dropout=float(cfg.head_dropout),
        rates=dropout_rates(cfg, cfg.depth),
    )
    init_weights(model, cfg.init)
    return model


SURVIVAL_RULES = {"linear": linear_decay_survival, "uniform": uniform_survival}


@MODELS.register("resmlp", "residual_mlp")
def build_resmlp(cfg: DictConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    positive_int("model.depth", cfg.depth)
    positive_int("model.width", cfg.width)
    block = check_block(list(cfg.block), "linear")
    final = [LAYERS.canonical(n, "model.final") for n in (cfg.final or [])]
    choice("model.survival_rule", cfg.survival_rule, SURVIVAL_RULES)
    choice("model.drop_path_mode", cfg.drop_path_mode, MODES)
    survival = SURVIVAL_RULES[cfg.survival_rule](
        cfg.depth, cfg.survival_last, key="model.survival_last"
    )
    model = ResMLP(
        in_features=math.prod(input_shape),
        num_classes=num_classes,
        width=cfg.width,
        block=block,
        final=final,
        spec=layer_spec(cfg, dims=0, per_block_dropout=True),
        survival=survival,
        rates=dropout_rates(cfg, cfg.depth),
        input_dropout=float(cfg.input_dropout),
        head_dropout=float(cfg.head_dropout),
        drop_path_mode=cfg.drop_path_mode,
    )
    init_weights(model, cfg.init)
    return model

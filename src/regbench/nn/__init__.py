"""Models built from layer registries and the order spec (docs/ARCHITECTURE.md, "Parts")."""

from __future__ import annotations

from collections.abc import Callable

from omegaconf import DictConfig
from torch import nn

from regbench.registry import Registry

#: model name -> builder(cfg.model, input_shape, num_classes) -> nn.Module
MODELS = Registry("model")


def build_model(cfg: DictConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    # Importing the builders registers them.
    from regbench.nn import cnn, mlp, resnet  # noqa: F401
    from regbench.nn.init import scale_init

    builder: Callable[..., nn.Module] = MODELS.get(cfg.name, "model.name")
    model = builder(cfg, tuple(input_shape), int(num_classes))
    scale_init(model, cfg.get("init_scale", 1.0))  # after the builder's own init scheme
    # what one sample looks like, for whoever plans work on the model without its data
    # (a batched group's cost: regbench.batched.plan)
    model.input_shape = tuple(int(n) for n in input_shape)
    return model

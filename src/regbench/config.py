"""Composing the Hydra config outside ``@hydra.main`` (tests, sweeps, reproductions)."""

from __future__ import annotations

from collections.abc import Sequence

from hydra import compose as _compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from regbench.paths import CONF_DIR, ROOT

#: conf/train.yaml's ``experiment_name``: where runs go that name no experiment
DEFAULT_EXPERIMENT = "train"


def register_resolvers() -> None:
    """``${rb_root:}`` (the repository root) in conf/; idempotent, called before composing."""
    if not OmegaConf.has_resolver("rb_root"):
        OmegaConf.register_new_resolver("rb_root", lambda: str(ROOT))


def compose(overrides: Sequence[str] = (), config_name: str = "train") -> DictConfig:
    """The resolved training config for ``overrides`` (Hydra override syntax)."""
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = _compose(config_name=config_name, overrides=list(overrides))
    OmegaConf.resolve(cfg)
    return cfg

"""The regularization catalogue: one small file per family (see DESIGN.md).

``build_regularizers(cfg)`` turns the multi-select ``reg`` group into a
:class:`~regbench.module.Regularizers` bundle: loss penalties, post-step constraints,
train-batch transforms and callbacks. Each entry of ``cfg.reg`` is keyed by its config
file name and has a ``kind`` that selects the factory in :data:`REGULARIZERS`.
"""

from __future__ import annotations

from omegaconf import DictConfig

from regbench.registry import Registry

#: kind -> factory(entry_cfg, bundle, key) that adds itself to the bundle
REGULARIZERS = Registry("regularizer kind")


def build_regularizers(cfg: DictConfig):
    from regbench.module import Regularizers

    bundle = Regularizers()
    for name, entry in (cfg.get("reg") or {}).items():
        if entry is None:
            continue
        key = f"reg.{name}.kind"
        REGULARIZERS.get(entry.get("kind", name), key)(entry, bundle, f"reg.{name}")
    return bundle

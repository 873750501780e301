"""The regularization catalogue: one small file per family (docs/ARCHITECTURE.md).

``build_regularizers(cfg, num_classes)`` turns the multi-select ``reg`` group into a
:class:`~regbench.reg.bundle.Regularizers` bundle: loss penalties, post-step constraints,
train-batch transforms and callbacks, each behind the hook contract of
:mod:`regbench.reg.bundle`. Each entry of ``cfg.reg`` is keyed by its config file name
and has a ``kind`` that selects the factory in :data:`REGULARIZERS`; a factory
``(entry_cfg, bundle, key)`` adds itself to the bundle. A new regularizer is one file
here (it registers itself) plus one ``conf/reg/<name>.yaml``; it batches in a grid if
its file also defines its stacked form (:mod:`regbench.reg.stacked`).

It also reads the test-time option of stochastic layers (``model.test_mode``,
``model.mc_samples``).

Rates of the dropout family and DropConnect are *drop* probabilities (PyTorch's
convention); Srivastava et al. 2014 and Li et al. 2019 write p for the *retain*
probability. Stochastic depth's ``survival_last`` is a keep probability, as in its paper.
"""

from __future__ import annotations

import importlib
import pkgutil

from omegaconf import DictConfig

from regbench.errors import ConfigError
from regbench.registry import Registry

#: kind -> factory(entry_cfg, bundle, key) that adds itself to the bundle
REGULARIZERS = Registry("regularizer kind")


def _register_all() -> None:
    """Import every module of this package: each registers its kinds on import, so a new
    regularizer is one file here plus one conf/reg/<name>.yaml."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


def build_regularizers(cfg: DictConfig, num_classes: int | None = None):
    """The bundle of ``cfg.reg``; ``num_classes`` of the data, for those that need it.
    Each entry's objects are kept under its name (``bundle.entries``); a run binds the
    ones that draw to its streams (``bundle.bind``)."""
    from regbench.reg.bundle import Regularizers
    from regbench.reg.inference import inference_from

    _register_all()
    bundle = Regularizers(num_classes=num_classes)
    for name, entry in (cfg.get("reg") or {}).items():
        if entry is None:
            continue
        if not isinstance(entry, DictConfig):
            raise ConfigError(f"reg.{name}={entry!r} is not valid; it must be a mapping")
        key = f"reg.{name}.kind"
        kind = REGULARIZERS.canonical(entry.kind, key)
        if kind == "early_stopping":
            _check_monitor_is_logged(cfg, entry, f"reg.{name}")
        before = {id(o) for o in bundle.parts()}
        REGULARIZERS.get(kind)(entry, bundle, f"reg.{name}")
        bundle.entries[name] = [o for o in bundle.parts() if id(o) not in before]
    bundle.inference = inference_from(cfg.model)
    return bundle


def _check_monitor_is_logged(cfg: DictConfig, entry: DictConfig, key: str) -> None:
    monitor = str(entry.monitor)
    if monitor.startswith("val/") and cfg.data.val_fraction == 0:
        raise ConfigError(
            f"{key}.monitor={monitor!r} needs a validation split, but data.val_fraction=0; "
            "set data.val_fraction > 0 or monitor a train/ metric"
        )

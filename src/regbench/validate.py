"""Every config value checked when a run is built, before an MLflow run exists.

Three kinds of check, each raising :class:`~regbench.errors.ConfigError` with one line
that names the key, the value and what is allowed:

- **types**: a key whose value in every ``conf/`` file that sets it is a number (or a
  bool) must not be given text: ``seed=abc``, ``data.n_train=abc``, ``logger.background=3``.
  The reference is the YAML files themselves, so a new key is checked without a new rule.
- **ranges and choices** of the keys that Lightning, the data and the logger read
  (:data:`RULES`), e.g. ``trainer.precision`` against Lightning's own precision values.
  The model, optimizer, scheduler and regularizer builders check their own keys.
- **compatibility between parts**: each batch transform in ``reg`` is run once on a
  dummy batch of the data set's input shape, so ``reg=[crop_flip]`` on MNIST-1D's
  (B, 40) signals fails here, not inside the first training step.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from regbench.errors import ConfigError, choice, in_range, positive_int
from regbench.paths import CONF_DIR

_ANY = "any"  # a key some conf/ file leaves open (null, text, an interpolation)


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "number"
    if isinstance(v, list):
        return "list"
    return _ANY


def _leaves(node: Any, prefix: str) -> Iterable[tuple[str, Any]]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k not in ("defaults", "hydra"):
                yield from _leaves(v, f"{prefix}{k}.")
    else:
        yield prefix[:-1], node


@functools.cache
def reference_kinds(conf_dir: Path = CONF_DIR) -> dict[str, set[str]]:
    """``{"data.n_train": {"int"}, "trainer.devices": {"int"}, ...}``: the kinds of value
    each key has across train.yaml and every group file (experiments excluded: they are
    overrides of these)."""
    kinds: dict[str, set[str]] = {}
    files = [(conf_dir / "train.yaml", "")]
    for group in sorted(p for p in conf_dir.iterdir() if p.is_dir()):
        if group.name not in ("experiment", "hydra"):
            files += [(f, f"{group.name}.") for f in sorted(group.glob("*.yaml"))]
    for path, prefix in files:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        for key, value in _leaves(raw, prefix):
            kinds.setdefault(key, set()).add(_kind(value))
    return kinds


def check_types(cfg: DictConfig) -> None:
    """A value given as text (or a number for a bool) where every conf/ file has a number
    (or a bool): the typo of ``seed=abc`` that would otherwise fail deep in a library."""
    raw = OmegaConf.to_container(cfg, resolve=True)
    ref = reference_kinds()
    for key, value in _leaves(raw, ""):
        kinds = ref.get(key)
        if not kinds or _ANY in kinds or value is None:
            continue
        got = _kind(value)
        if kinds == {"bool"} and got != "bool":
            raise ConfigError(f"{key}={value!r} is not valid; it must be true or false")
        if kinds <= {"int"} and got != "int":
            raise ConfigError(f"{key}={value!r} is not valid; it must be an integer")
        if kinds <= {"int", "number"} and got not in ("int", "number"):
            raise ConfigError(f"{key}={value!r} is not valid; it must be a number")


def _lightning_precisions() -> list[str]:
    """The precision values Lightning accepts, read from its own type (not copied here)."""
    from typing import get_args

    from lightning_fabric.connector import _PRECISION_INPUT

    def flat(t: Any) -> list:
        args = get_args(t)
        return [x for a in args for x in flat(a)] if args else [t]

    return [str(v) for v in flat(_PRECISION_INPUT)]


def _precision(key: str, value: Any) -> None:
    allowed = sorted(set(_lightning_precisions()))
    if str(value) not in allowed:
        raise ConfigError(
            f"{key}={value!r} is not valid; choose one of Lightning's: {', '.join(allowed)}"
        )


def _accelerator(key: str, value: Any) -> None:
    choice(key, value, ["auto", "cpu", "cuda", "gpu", "mps", "tpu"])


def _devices(key: str, value: Any) -> None:
    if value != "auto" and value != -1:
        try:
            positive_int(key, value)
        except ConfigError:
            raise ConfigError(
                f"{key}={value!r} is not valid; it must be an integer >= 1, -1 (all) or auto"
            ) from None


def _seed(key: str, value: Any) -> None:
    """numpy's seed range, which Lightning's seed_everything enforces."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**32:
        raise ConfigError(f"{key}={value!r} is not valid; it must be an integer in [0, 2**32)")


def _betas(key: str, value: Any) -> None:
    """Adam's (beta1, beta2): two numbers in [0, 1) (Kingma & Ba 2014, arXiv 1412.6980)."""
    if not isinstance(value, list | tuple | ListConfig) or len(value) != 2:
        raise ConfigError(f"{key}={value!r} is not valid; it must be two numbers in [0, 1)")
    for i, b in enumerate(value):
        in_range(f"{key}[{i}]", b, 0.0, 1.0, hi_open=True)


def _bool(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} is not valid; it must be true or false")


def _int_at_least(lo: int) -> Callable[[str, Any], None]:
    def check(key: str, value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < lo:
            raise ConfigError(f"{key}={value!r} is not valid; it must be an integer >= {lo}")

    return check


def _interval(lo: float | None, hi: float | None, **open_: bool) -> Callable[[str, Any], None]:
    return lambda key, value: in_range(key, value, lo, hi, **open_)


def _nonempty_text(key: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key}={value!r} is not valid; it must be a non-empty name")


def _optional(rule: Callable[[str, Any], None]) -> Callable[[str, Any], None]:
    return lambda key, value: None if value is None else rule(key, value)


#: key -> check(key, value); applied where the key is present in the composed config.
RULES: dict[str, Callable[[str, Any], None]] = {
    "seed": _seed,
    "experiment_name": _nonempty_text,
    "trainer.max_epochs": _int_at_least(1),
    "trainer.accelerator": _accelerator,
    "trainer.devices": _devices,
    "trainer.precision": _precision,
    "trainer.deterministic": lambda k, v: None if v == "warn" else _bool(k, v),
    "trainer.check_val_every_n_epoch": _int_at_least(1),
    "trainer.gradient_clip_val": _optional(_interval(0, None)),
    "trainer.steps_per_call": _int_at_least(1),
    "trainer.progress_bar": _bool,
    "data.batch_size": _int_at_least(1),
    "data.n_train": _int_at_least(1),
    "data.n_test": _int_at_least(1),
    "data.generator_seed": _int_at_least(0),
    "data.val_fraction": _interval(0, 1, hi_open=True),
    "data.label_noise": _interval(0, 1),
    "logger.background": _bool,
    "logger.every_n_epochs": _int_at_least(1),
    "logger.flush_every_s": _interval(0, None),
    "diag.enabled": _bool,
    "diag.every_n_epochs": _int_at_least(0),
    "diag.sparsity_threshold": _interval(0, None),
    "diag.eval_batch_size": _int_at_least(1),
    "scheduler.eta_min": _interval(0, None),
    "optim.betas": _betas,
}


def check_config(cfg: DictConfig) -> None:
    """Types, then ranges and choices; call before building anything."""
    check_types(cfg)
    # trainer.precision asks Lightning for its values, which imports it (most of a cold
    # start): checked last, so a mistake anywhere else answers before that import
    for key, rule in sorted(RULES.items(), key=lambda kv: kv[0] == "trainer.precision"):
        value = OmegaConf.select(cfg, key, default="???missing")
        if value != "???missing":
            rule(key, value)


def check_transforms(cfg: DictConfig, input_shape: tuple[int, ...], num_classes: int) -> None:
    """Run every ``reg`` batch transform once on a dummy batch of ``input_shape``: one that
    cannot take the data set's inputs fails here, naming its ``reg`` entry."""
    import torch

    from regbench.reg import REGULARIZERS, _register_all
    from regbench.reg.bundle import Regularizers

    _register_all()
    for name, entry in (cfg.get("reg") or {}).items():
        if not isinstance(entry, DictConfig):
            continue
        bundle = Regularizers(num_classes=num_classes)
        REGULARIZERS.get(REGULARIZERS.canonical(entry.get("kind", name), f"reg.{name}.kind"))(
            entry, bundle, f"reg.{name}"
        )
        x = torch.zeros(2, *input_shape)  # (B, *input_shape), as the training step sees it
        y = torch.zeros(2, dtype=torch.long) % max(num_classes, 1)
        with torch.random.fork_rng(devices=[]):  # leave the run's random stream untouched
            for t in bundle.transforms:
                try:
                    t(x, y)
                except (ValueError, RuntimeError, IndexError) as e:
                    data = cfg.data.get("name", "?")
                    raise ConfigError(
                        f"reg=[{name}] does not fit data={data}, whose inputs are "
                        f"{tuple(input_shape)} per sample: {str(e).splitlines()[0]}"
                    ) from None


def compose_checked(overrides: list[str]) -> DictConfig:
    """Compose like ``regbench train`` does; Hydra's multi-line composition errors become
    one line naming the override and what is allowed."""
    from regbench.config import compose

    try:
        return compose(overrides)
    except ConfigError:
        raise
    except Exception as e:  # Hydra's parse and composition errors
        raise ConfigError(_one_line(e, overrides)) from None


def _one_line(e: Exception, overrides: list[str]) -> str:
    import re

    msg = str(e)
    if m := re.search(r"Could not (?:find|load) '([^/']+)/([^']+)'", msg):
        group, option = m.groups()
        names = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
        return f"{group}={option} is not a known option; choose one of: {', '.join(names)}"
    if m := re.search(r"Could not override '([^']+)'", msg):
        key = m.group(1)
        parent, _, leaf = key.rpartition(".")
        rest = [o for o in overrides if not o.lstrip("+~").startswith(f"{key}=")]
        try:
            node = OmegaConf.select(compose_checked(rest), parent) if parent else None
        except ConfigError:
            node = None
        known = f"; known keys of {parent}: {', '.join(sorted(node))}" if node else ""
        return f"{key}: unknown key {leaf!r}{known} (add a new key with +{key}=...)"
    first = msg.strip().splitlines()[0] if msg.strip() else type(e).__name__
    return f"{_bad_override(overrides) or ' '.join(overrides)}: {first}"


def _bad_override(overrides: list[str]) -> str | None:
    """The first override Hydra's grammar rejects, or one with a sweep where one value goes."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for o in overrides:
        try:
            if parser.parse_overrides([o])[0].is_sweep_override():
                return o
        except Exception:
            return o
    return None

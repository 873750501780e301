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
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from regbench.errors import ConfigError, choice, in_range, positive_int
from regbench.paths import CONF_DIR

_ANY = "any"  # a key some conf/ file leaves open (null, text, an interpolation)
_ABSENT = object()  # OmegaConf.select's answer for a key the config does not have


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
        for i, v in enumerate(value if isinstance(value, list) else [value]):
            if isinstance(v, float) and not math.isfinite(v):  # inf or nan, any key
                where = f"{key}[{i}]" if isinstance(value, list) else key
                raise ConfigError(f"{where}={v!r} is not valid; it must be a finite number")
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


#: Lightning's accelerator names (lightning.pytorch.accelerators)
_ACCELERATORS = ("auto", "cpu", "cuda", "gpu", "mps", "tpu", "xla", "hpu")


def available_accelerators() -> list[str]:
    """What this machine offers Lightning: cpu and auto always, cuda/gpu with a CUDA GPU,
    mps on Apple silicon (torch is imported only here, when a device is asked for)."""
    import torch

    out = ["auto", "cpu"]
    if torch.cuda.is_available():
        out += ["cuda", "gpu"]
    if torch.backends.mps.is_available():
        out.append("mps")
    return out


def _accelerator(key: str, value: Any) -> None:
    if value in ("auto", "cpu"):
        return
    if value not in _ACCELERATORS:
        choice(key, value, _ACCELERATORS)
    offered = available_accelerators()
    if value not in offered:
        raise ConfigError(
            f"{key}={value!r} is not available on this machine; choose one of: {', '.join(offered)}"
        )


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
    "trainer.val_every_n_steps": _int_at_least(0),
    "trainer.val_step_samples": _int_at_least(0),
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


def check_settings(cfg: DictConfig) -> None:
    """Every check of a run's config that needs neither its data nor its model: types,
    ranges and choices (:func:`check_config`), then the optimizer, scheduler, cost target
    and batch limit, read by their own builders. ``train.build`` calls it first."""
    import torch

    from regbench.data.batches import limit_batches
    from regbench.optim import build_scheduler, check_optim
    from regbench.tracking import cost

    if cfg.get("reproduce_only"):  # an experiment whose runs are not one Lightning fit
        raise ConfigError(
            f"experiment={cfg.reproduce_only} configures a reproduction, not a training "
            f"run; use: regbench reproduce {cfg.reproduce_only}"
        )
    check_config(cfg)
    positive_int("trainer.max_epochs", cfg.trainer.max_epochs)
    positive_int("trainer.steps_per_call", cfg.trainer.steps_per_call)
    positive_int("logger.every_n_epochs", cfg.logger.every_n_epochs)
    cost.check_target(cfg.trainer)
    check_optim(cfg.optim)
    build_scheduler(cfg.scheduler, torch.optim.SGD([torch.zeros(1)], lr=1.0), 1)
    try:
        limit_batches(1, cfg.trainer.limit_train_batches)
    except ValueError as e:
        raise ConfigError(f"trainer.limit_train_batches: {e}") from None


def check_job(cfg: DictConfig, shapes: dict | None = None) -> None:
    """Everything ``train.build`` checks, without training or an MLflow run: the
    settings, then the model, regularizers and batch transforms built by their builders
    for the data set's input shape, so names resolved by registries (norms, activations,
    blocks, models, regularizer and dropout kinds, inits) are checked too. ``shapes``
    caches the data sets' ``(input_shape, num_classes)`` across the jobs of a grid."""
    import torch

    from regbench.nn import build_model
    from regbench.reg import build_regularizers

    check_settings(cfg)
    shape, classes = data_shape(cfg, {} if shapes is None else shapes)
    with torch.random.fork_rng(devices=[]):  # the builders' init draws leave no trace
        build_model(cfg.model, shape, classes)
        build_regularizers(cfg, classes)
        check_transforms(cfg, shape, classes)


def data_shape(cfg: DictConfig, cache: dict) -> tuple[tuple[int, ...], int]:
    """``(input_shape, num_classes)`` of ``cfg.data``, loaded once per data config (the
    loader checks its own keys; MNIST-1D comes from its cache, torchvision sets from disk)."""
    from regbench.data import build_data

    key = OmegaConf.to_yaml(cfg.data)
    if key not in cache:
        splits = build_data(cfg.data, cfg.seed)
        cache[key] = (tuple(splits.input_shape), splits.num_classes)
    return cache[key]


def grid_jobs(overrides: list[str]) -> list[list[str]]:
    """The jobs of ``regbench train -m``: Hydra's basic sweeper's cartesian product of the
    sweep overrides (``model.width=16,64 seed=0,1`` -> 4 jobs), in its order."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
        [jobs] = BasicSweeper.split_arguments(parsed, None)
    except Exception as e:  # Hydra's grammar errors, or a sweep kind it cannot list
        raise ConfigError(_one_line(e, overrides)) from None
    return jobs


def check_grid(overrides: list[str]) -> int:
    """Compose and check every job of a ``-m`` grid before any trains and before the
    grid's MLflow parent run exists; a bad job raises naming itself. Jobs that differ
    only in ``seed`` are composed and built once (the seed's own range is checked per
    job). Returns the number of jobs."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    jobs = grid_jobs(overrides)
    shapes: dict = {}
    checked: set[tuple[str, ...]] = set()
    for job in jobs:
        rest = tuple(o for o in job if not o.startswith("seed="))
        try:
            if rest not in checked:
                check_job(compose_checked(job), shapes)
                checked.add(rest)
            else:  # the same config but for its seed
                for o in job:
                    if o.startswith("seed="):
                        _seed("seed", parser.parse_override(o).value())
        except ConfigError as e:
            raise ConfigError(f"{e} (job: {' '.join(job)})") from None
    return len(jobs)


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
    one line naming the override and what is allowed. A ``+key=value`` that adds a key
    the config does not have is refused the same way: nothing would read it."""
    from regbench.config import compose

    try:
        cfg = compose(overrides)
    except ConfigError:
        raise
    except Exception as e:  # Hydra's parse and composition errors
        raise ConfigError(_one_line(e, overrides)) from None
    for o in overrides:
        key = _override_key(o)
        if o.startswith("+") and "/" not in key and "=" in o:  # not a group append
            rest = [x for x in overrides if x is not o]
            try:
                known = OmegaConf.select(compose(rest), key, default=_ABSENT) is not _ABSENT
            except Exception:
                known = True  # the rest does not compose alone; the key is not the problem
            if not known:
                raise ConfigError(f"+{_unknown_key(key, rest + [o.lstrip('+')])}")
    return cfg


def _one_line(e: Exception, overrides: list[str]) -> str:
    import re

    msg = str(e)
    if m := re.search(r"Could not (?:find|load) '([^/']+)/([^']+)'", msg):
        group, option = m.groups()
        names = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
        return f"{group}={option} is not a known option; choose one of: {', '.join(names)}"
    if m := re.search(r"Could not override '([^']+)'", msg):
        return _unknown_key(m.group(1), overrides)
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


def _override_key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0]


def _unknown_key(key: str, overrides: list[str]) -> str:
    """One line for an override of a key the composed config does not have: the group
    selection that brings the key (``reg.l1.strength`` needs ``reg=[l1]``), else the
    nearest existing key ("did you mean model.width?"), else the keys that exist there.
    Never "add it with +key": a new key is read by nothing, so it is always a mistake."""
    import difflib

    given = next((o for o in overrides if _override_key(o) == key), f"{key}=...")
    rest = [o for o in overrides if _override_key(o) != key]
    try:
        cfg = compose_checked(rest)
    except ConfigError:
        cfg = None
    if hint := _selection_hint(key, given, cfg):
        return f"{key}: {hint}"
    raw = OmegaConf.to_container(cfg, resolve=False) if cfg is not None else {}
    keys = [k for k, _ in _leaves(raw, "")]
    keys += sorted({k.rsplit(".", i)[0] for k in keys for i in range(1, k.count(".") + 1)})
    # the groups too: reg and experiment have no key in a config that selects none of them
    keys += sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name != "shared")
    if near := difflib.get_close_matches(key, keys, n=1, cutoff=0.8):
        return f"{key}: unknown key; did you mean {near[0]}?"
    parent = key.rpartition(".")[0]
    node = OmegaConf.select(cfg, parent) if cfg is not None and parent else None
    if isinstance(node, DictConfig):
        return f"{key}: unknown key; known keys of {parent}: {', '.join(sorted(node))}"
    return f"{key}: unknown key"


def _selection_hint(key: str, given: str, cfg: DictConfig | None) -> str | None:
    """``reg=[l1]`` for ``reg.l1.strength`` (a ``reg`` entry not selected); for a key of
    a single-select group, the options that have it (``optim.momentum``: optim=sgd)."""
    group, _, sub = key.partition(".")
    folder = CONF_DIR / group
    if not sub or not folder.is_dir() or group in ("hydra", "experiment", "shared"):
        return None
    if group == "reg":  # the multi-select group: an entry per selected option
        option = sub.split(".")[0]
        if not (folder / f"{option}.yaml").exists():
            names = sorted(p.stem for p in folder.glob("*.yaml"))
            return f"{option!r} is not a reg option; choose from: {', '.join(names)}"
        selected = list((cfg.get("reg") or {}) if cfg is not None else {})
        if option in selected:  # selected: the rest of the key is the typo (reg.l1.strenght)
            return None
        chosen = [*selected, option]
        return (
            f"{option} is not selected in reg; select it with reg=[{','.join(chosen)}] "
            f"(then {given.lstrip('+~')})"
        )
    having = sorted(p.stem for p in folder.glob("*.yaml") if key in _option_keys(group, p.stem))
    if not having:
        return None
    return (
        f"not a key of the selected {group}; the {group} options that have it: "
        f"{', '.join(having)} (select one, e.g. {group}={having[0]})"
    )


@functools.cache
def _option_keys(group: str, option: str) -> frozenset[str]:
    """The keys a conf/<group>/<option>.yaml sets, with those of the files its defaults
    list pulls in (``- resnet20``, ``- /shared/model@_here_``), read without composing."""
    path = CONF_DIR / group / f"{option}.yaml"
    if not path.exists():
        return frozenset()
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False) or {}
    keys = {k for k, _ in _leaves(raw, f"{group}.")}
    for entry in raw.get("defaults", []) if isinstance(raw, dict) else []:
        if not isinstance(entry, str) or entry == "_self_":
            continue
        name, _, package = entry.partition("@")
        if name.startswith("/") and package == "_here_":  # another group's file, here
            other_group, _, other = name[1:].rpartition("/")
            keys |= {f"{group}.{k.split('.', 1)[1]}" for k in _option_keys(other_group, other)}
        elif "/" not in name and not package:  # a sibling option of this group
            keys |= _option_keys(group, name)
    return frozenset(keys)

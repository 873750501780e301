"""Study files (``sweeps/*.yaml``): parsing, validation, and turning Optuna parameters
into Hydra overrides.

A study file names the base overrides, the objective (metric and direction), the seeds
every trial trains and how their results aggregate, the sampler, the pruner, the budget
(``n_trials`` and/or ``timeout``) and the search space over config keys::

    overrides: [optim=adamw]
    objective: {metric: val/acc, direction: maximize}
    seeds: [0, 1]              # or a count: 2 -> [0, 1]
    aggregate: mean            # mean | median | min | max
    sampler: tpe               # tpe | random | grid, or {kind: tpe, seed: 0, ...}
    pruner: median             # median | hyperband | none, or {kind: median, ...}
    n_trials: 20
    space:
      optim.lr: {type: float, low: 1.0e-4, high: 0.1, log: true}
      model.width: {type: int, low: 16, high: 256, log: true}
      model.dropout: [0.0, 0.25, 0.5]           # a plain list is categorical
      placement:                                # named choices: each one a set of overrides
        type: categorical
        choices:
          before_bn: {model.block: [linear, dropout, norm, act]}
          head: {model.block: [linear, norm, act], model.head_dropout: ${model.dropout}}

With ``sampler: grid`` every parameter must be categorical; the study runs the product
of the choices once each (the Optuna GridSampler's semantics, implemented by enqueueing
the missing points so that a rerun retries failed ones and skips completed ones).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from regbench.errors import ConfigError, choice, positive_int

TOP_KEYS = {
    "name",
    "description",
    "experiment_name",
    "overrides",
    "objective",
    "seeds",
    "aggregate",
    "sampler",
    "pruner",
    "n_trials",
    "timeout",
    "space",
    "heartbeat",
}
AGGREGATES = {"mean": statistics.fmean, "median": statistics.median, "min": min, "max": max}
SAMPLERS = {"tpe", "random", "grid"}
PRUNERS = {"median", "hyperband", "none"}
METRIC_PREFIXES = ("train/", "val/", "test/", "diag/")
GRID_POINT = "grid_point"  # user attr of a queued grid trial: its values as queued


def hydra_value(v: Any) -> str:
    """A Python value as a Hydra override value: ``[linear,norm,act]``, ``true``, ``1e-05``."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, int | float | str):
        return repr(v) if isinstance(v, float) else str(v)
    if isinstance(v, list | tuple):
        return "[" + ",".join(hydra_value(x) for x in v) + "]"
    raise ConfigError(f"value {v!r} cannot be written as a Hydra override (use a scalar or list)")


def _storable(v: Any) -> Any:
    """Optuna stores categorical choices as JSON scalars: lists become their override text."""
    return hydra_value(v) if isinstance(v, list | tuple) else v


def _number(key: str, v: Any) -> float:
    try:  # YAML 1.1 reads ``1e-4`` (no dot) as a string
        out = float(v)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}={v!r} is not a number") from None
    if not math.isfinite(out):
        raise ConfigError(f"{key}={v!r} must be finite")
    return out


@dataclass(frozen=True)
class Param:
    """One search-space axis: a config key (or a label of named override sets)."""

    key: str
    kind: str  # float | int | categorical
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: float | None = None
    choices: tuple = ()  # categorical, as stored by Optuna
    bundles: dict[str, tuple[str, ...]] = field(default_factory=dict)  # named choices

    def suggest(self, trial, grid: bool = False) -> Any:
        if grid:
            return self._suggest_grid(trial)
        if self.kind == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return trial.suggest_int(
                self.key, int(self.low), int(self.high), log=self.log, step=int(self.step or 1)
            )
        return trial.suggest_categorical(self.key, list(self.choices))

    def _suggest_grid(self, trial) -> Any:
        """A grid point is an enqueued trial with fixed params; record it so that a later,
        larger grid stays compatible: Optuna refuses a categorical parameter whose choices
        changed, but accepts numeric ones over a new range."""
        nums = [c for c in self.choices if isinstance(c, int | float) and not isinstance(c, bool)]
        if len(nums) == len(self.choices) and not self.bundles:
            if all(isinstance(c, int) for c in nums):
                return trial.suggest_int(self.key, min(nums), max(nums))
            return trial.suggest_float(self.key, float(min(nums)), float(max(nums)))
        try:
            return trial.suggest_categorical(self.key, list(self.choices))
        except ValueError:  # choices grew since the study began: keep the point unrecorded
            return trial.user_attrs[GRID_POINT][self.key]

    def overrides(self, value: Any) -> list[str]:
        if self.bundles:
            return list(self.bundles[value])
        return [f"{self.key}={hydra_value(value)}"]

    def examples(self) -> list[Any]:
        """Values to compose once in the parent, to catch unknown keys before any trial."""
        return list(self.choices) if self.kind == "categorical" else [self.low, self.high]


def parse_param(key: str, raw: Any) -> Param:
    where = f"space.{key}"
    if isinstance(raw, list):
        raw = {"type": "categorical", "choices": raw}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a list of choices or a mapping with 'type'")
    kind = raw.get("type")
    choice(f"{where}.type", kind, {"float", "int", "categorical"})
    allowed = (
        {"type", "choices"} if kind == "categorical" else {"type", "low", "high", "log", "step"}
    )
    for k in raw:
        choice(f"{where} key", k, allowed)
    if kind == "categorical":
        raw_choices = raw.get("choices")
        if isinstance(raw_choices, dict):  # named choices: label -> overrides
            if not raw_choices:
                raise ConfigError(f"{where}.choices must not be empty")
            bundles = {
                str(label): _bundle(f"{where}.choices.{label}", ov)
                for label, ov in raw_choices.items()
            }
            return Param(key, kind, choices=tuple(bundles), bundles=bundles)
        if not isinstance(raw_choices, list) or not raw_choices:
            raise ConfigError(
                f"{where}.choices must be a non-empty list (or a mapping of named override sets)"
            )
        choices = tuple(_storable(c) for c in raw_choices)
        if len(set(map(json.dumps, choices))) != len(choices):
            raise ConfigError(f"{where}.choices={list(raw_choices)} has duplicates")
        return Param(key, kind, choices=choices)
    for k in ("low", "high"):
        if k not in raw:
            raise ConfigError(f"{where}.{k} is missing (a {kind} parameter needs low and high)")
    low, high = _number(f"{where}.low", raw["low"]), _number(f"{where}.high", raw["high"])
    log = bool(raw.get("log", False))
    step = None if raw.get("step") is None else _number(f"{where}.step", raw["step"])
    if kind == "int" and (low != int(low) or high != int(high)):
        raise ConfigError(f"{where}: low={low:g} and high={high:g} must be integers")
    if low >= high:
        raise ConfigError(f"{where}: low={low:g} must be below high={high:g}")
    if log and low <= 0:
        raise ConfigError(f"{where}: low={low:g} must be > 0 with log: true")
    if log and step is not None and kind == "float":
        raise ConfigError(f"{where}: step and log: true cannot be combined")
    return Param(key, kind, low=low, high=high, log=log, step=step)


def _bundle(where: str, raw: Any) -> tuple[str, ...]:
    if isinstance(raw, dict):
        return tuple(f"{k}={hydra_value(v)}" for k, v in raw.items())
    if isinstance(raw, list) and all(isinstance(o, str) and "=" in o for o in raw):
        return tuple(raw)
    raise ConfigError(f"{where} must map config keys to values, or list 'key=value' overrides")


def _kind_and_kwargs(where: str, raw: Any, allowed: set[str], default: str) -> dict:
    raw = {"kind": raw} if isinstance(raw, str) else dict(raw or {"kind": default})
    choice(f"{where}.kind", raw.get("kind", default), allowed)
    raw.setdefault("kind", default)
    return raw


@dataclass
class StudySpec:
    name: str
    overrides: list[str]
    metric: str
    direction: str
    seeds: list[int]
    space: list[Param]
    aggregate: str = "mean"
    sampler: dict = field(default_factory=lambda: {"kind": "tpe"})
    pruner: dict = field(default_factory=lambda: {"kind": "none"})
    n_trials: int | None = None
    timeout: float | None = None
    experiment_name: str | None = None
    heartbeat_interval: int = 10
    grace_period: int = 30
    text: str = ""  # the study file (logged to the parent run)

    @property
    def is_grid(self) -> bool:
        return self.sampler["kind"] == "grid"

    def grid_points(self) -> list[dict[str, Any]]:
        axes = [[(p.key, c) for c in p.choices] for p in self.space]
        return [dict(combo) for combo in itertools.product(*axes)]

    def point_overrides(self, params: dict[str, Any]) -> list[str]:
        return [o for p in self.space for o in p.overrides(params[p.key])]

    def fingerprint(self, cli_overrides: list[str]) -> str:
        """What makes two runs of a study comparable. Grid choices and budgets are left out,
        so that a grid can be extended and a study given more trials."""
        space = [p.key for p in self.space] if self.is_grid else [repr(p) for p in self.space]
        blob = json.dumps(
            [
                self.overrides,
                list(cli_overrides),
                self.metric,
                self.direction,
                self.seeds,
                self.aggregate,
                space,
            ]
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def aggregate_values(self, values: list[float]) -> float:
        return float(AGGREGATES[self.aggregate](values))


def parse_spec(raw: dict, name: str, text: str = "") -> StudySpec:
    """Validate a study mapping; every error names the offending key."""
    if not isinstance(raw, dict):
        raise ConfigError(f"study file {name!r} must be a mapping of the keys: {sorted(TOP_KEYS)}")
    for k in raw:
        choice("study key", k, TOP_KEYS)
    overrides = raw.get("overrides") or []
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError(f"overrides={overrides!r} must be a list of 'key=value' strings")
    obj = raw.get("objective")
    if not isinstance(obj, dict) or "metric" not in obj:
        raise ConfigError("objective must be a mapping like {metric: val/acc, direction: maximize}")
    for k in obj:
        choice("objective key", k, {"metric", "direction"})
    metric = str(obj["metric"])
    if not metric.startswith(METRIC_PREFIXES):
        raise ConfigError(
            f"objective.metric={metric!r} must start with one of "
            f"{', '.join(METRIC_PREFIXES)} (a metric train.run returns)"
        )
    direction = obj.get("direction", "maximize" if metric.endswith("acc") else "minimize")
    choice("objective.direction", direction, {"maximize", "minimize"})
    seeds = raw.get("seeds", [0])
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        positive_int("seeds", seeds)
        seeds = list(range(seeds))
    if (
        not isinstance(seeds, list)
        or not seeds
        or len(set(seeds)) != len(seeds)
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    ):
        raise ConfigError(f"seeds={seeds!r} must be a count or a list of distinct integers")
    aggregate = raw.get("aggregate", "mean")
    choice("aggregate", aggregate, set(AGGREGATES))
    sampler = _kind_and_kwargs("sampler", raw.get("sampler"), SAMPLERS, "tpe")
    pruner = _kind_and_kwargs("pruner", raw.get("pruner"), PRUNERS, "none")
    space_raw = raw.get("space")
    if not isinstance(space_raw, dict) or not space_raw:
        raise ConfigError("space must be a non-empty mapping of config keys to parameters")
    space = [parse_param(str(k), v) for k, v in space_raw.items()]
    n_trials, timeout = raw.get("n_trials"), raw.get("timeout")
    if sampler["kind"] == "grid":
        for p in space:
            if p.kind != "categorical":
                raise ConfigError(
                    f"space.{p.key}: sampler grid needs categorical choices "
                    f"(a list), not type {p.kind}"
                )
        n_grid = math.prod(len(p.choices) for p in space)
        if n_trials is not None and n_trials != n_grid:
            raise ConfigError(
                f"n_trials={n_trials} but the grid has {n_grid} points; "
                f"leave n_trials out for a grid"
            )
        n_trials = n_grid
    if n_trials is not None:
        positive_int("n_trials", n_trials)
    if timeout is not None and (_number("timeout", timeout) <= 0):
        raise ConfigError(f"timeout={timeout!r} must be a positive number of seconds")
    if n_trials is None and timeout is None:
        raise ConfigError("give n_trials or timeout (or both)")
    hb = raw.get("heartbeat") or {}
    for k in hb:
        choice("heartbeat key", k, {"interval", "grace_period"})
    interval = hb.get("interval", 10)
    positive_int("heartbeat.interval", interval)
    grace = hb.get("grace_period", 3 * interval)
    positive_int("heartbeat.grace_period", grace)
    if grace <= interval:
        raise ConfigError(
            f"heartbeat.grace_period={grace} must exceed heartbeat.interval={interval}"
        )
    exp = raw.get("experiment_name")
    return StudySpec(
        name=str(raw.get("name") or name),
        overrides=list(overrides),
        metric=metric,
        direction=direction,
        seeds=seeds,
        space=space,
        aggregate=aggregate,
        sampler=sampler,
        pruner=pruner,
        n_trials=n_trials,
        timeout=None if timeout is None else float(timeout),
        experiment_name=None if exp is None else str(exp),
        heartbeat_interval=interval,
        grace_period=grace,
        text=text,
    )


def load_spec(path: str | Path) -> StudySpec:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"study file {str(path)!r} not found (see sweeps/*.yaml)")
    text = path.read_text()
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"study file {str(path)!r} is not valid YAML{at}: {problem}") from None
    return parse_spec(raw, path.stem, text)

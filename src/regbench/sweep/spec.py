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

The ``space:`` entries are parsed by :mod:`regbench.sweep.space`; this module checks the
rest of the file.
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

# The search space lives in regbench.sweep.space; GRID_POINT and hydra_value are
# re-exported, so that they stay importable from here.
from regbench.sweep.space import GRID_POINT as GRID_POINT
from regbench.sweep.space import Param, finite_number, parse_param
from regbench.sweep.space import hydra_value as hydra_value

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


def _kind_and_kwargs(where: str, raw: Any, allowed: set[str], default: str) -> dict:
    """A sampler or pruner: a name, or a mapping of ``kind`` and its arguments."""
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
    """Validate a study mapping; every error names the offending key. The sections are
    checked in a fixed order, so that a file with several errors reports the same one."""
    if not isinstance(raw, dict):
        raise ConfigError(f"study file {name!r} must be a mapping of the keys: {sorted(TOP_KEYS)}")
    for k in raw:
        choice("study key", k, TOP_KEYS)
    overrides = _overrides(raw.get("overrides") or [])
    metric, direction = _objective(raw.get("objective"))
    seeds = _seeds(raw.get("seeds", [0]))
    aggregate = raw.get("aggregate", "mean")
    choice("aggregate", aggregate, set(AGGREGATES))
    sampler = _kind_and_kwargs("sampler", raw.get("sampler"), SAMPLERS, "tpe")
    pruner = _kind_and_kwargs("pruner", raw.get("pruner"), PRUNERS, "none")
    space_raw = raw.get("space")
    if not isinstance(space_raw, dict) or not space_raw:
        raise ConfigError("space must be a non-empty mapping of config keys to parameters")
    space = [parse_param(str(k), v) for k, v in space_raw.items()]
    n_trials, timeout = _budget(raw.get("n_trials"), raw.get("timeout"), sampler, space)
    interval, grace = _heartbeat(raw.get("heartbeat") or {})
    exp = raw.get("experiment_name")
    return StudySpec(
        name=str(raw.get("name") or name),
        overrides=overrides,
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


def _overrides(overrides: Any) -> list[str]:
    """The base overrides, as a fresh list (the study spec must not share the raw one)."""
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError(f"overrides={overrides!r} must be a list of 'key=value' strings")
    return list(overrides)


def _objective(obj: Any) -> tuple[str, str]:
    """The metric and direction; an accuracy is maximized and anything else minimized
    unless the direction is given."""
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
    return metric, direction


def _seeds(seeds: Any) -> list[int]:
    """A count ``n`` means seeds ``0 .. n-1``; a list must hold distinct integers."""
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
    return seeds


def _budget(n_trials: Any, timeout: Any, sampler: dict, space: list[Param]) -> tuple[Any, Any]:
    """``n_trials`` and ``timeout`` as given (at least one of them); a grid's trial count
    is its number of points, so it needs categorical axes and no other count."""
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
    if timeout is not None and (finite_number("timeout", timeout) <= 0):
        raise ConfigError(f"timeout={timeout!r} must be a positive number of seconds")
    if n_trials is None and timeout is None:
        raise ConfigError("give n_trials or timeout (or both)")
    return n_trials, timeout


def _heartbeat(hb: dict) -> tuple[int, int]:
    """The heartbeat interval and grace period (default: three intervals); a running trial
    whose last heartbeat is older than the grace period is taken for a dead worker's."""
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
    return interval, grace


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

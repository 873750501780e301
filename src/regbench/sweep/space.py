"""The search space of a study file: one :class:`Param` per ``space:`` entry (a config
key, or a label of named override sets), parsed and checked, and the Hydra override text
of its values.

Kept apart from :mod:`regbench.sweep.spec` (the rest of the study file) because trials,
grids and the batched runner only need an axis and its overrides, not the whole file.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from regbench.errors import ConfigError, choice

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


def finite_number(key: str, v: Any) -> float:
    """A bound, step or timeout as a finite float; the error names the key."""
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
    """One ``space:`` entry (a plain list is categorical); every error names ``space.KEY``."""
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
    low, high = (
        finite_number(f"{where}.low", raw["low"]),
        finite_number(f"{where}.high", raw["high"]),
    )
    log = bool(raw.get("log", False))
    step = None if raw.get("step") is None else finite_number(f"{where}.step", raw["step"])
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

"""Errors a user can act on: printed as one message, without a traceback."""

from __future__ import annotations

import math
from collections.abc import Iterable

from hydra.errors import CompactHydraException


class ConfigError(CompactHydraException, ValueError):
    """Bad input, detected before any training starts. The message names the key."""


def choice(key: str, value: object, allowed: Iterable[str]) -> None:
    allowed = sorted(allowed)
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not valid; choose one of: {', '.join(allowed)}")


def in_range(
    key: str,
    value: float,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> None:
    """Check ``lo <= value <= hi`` (or strict where ``*_open``); None means unbounded, but
    never infinite: every rate, strength and scale is a finite number (``optim.lr=inf``
    would train until the loss is NaN)."""
    left = "(" if lo_open or lo is None else "["
    right = ")" if hi_open or hi is None else "]"
    lo_s = "-inf" if lo is None else f"{lo:g}"
    hi_s = "inf" if hi is None else f"{hi:g}"
    allowed = f"{left}{lo_s}, {hi_s}{right}"
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ConfigError(f"{key}={value!r} is not valid; it must be a finite number in {allowed}")
    if (lo is not None and (value <= lo if lo_open else value < lo)) or (
        hi is not None and (value >= hi if hi_open else value > hi)
    ):
        raise ConfigError(f"{key}={value!r} is out of range; allowed: {allowed}")


def positive_int(key: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{key}={value!r} is not valid; it must be an integer >= 1")

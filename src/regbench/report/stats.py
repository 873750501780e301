"""Aggregation over seeds: mean with a Student-t 95% confidence interval.

With n seeds, mean +- t_{0.975, n-1} * s / sqrt(n), s the sample standard deviation.
One seed gives no interval (half-width reported as NaN, printed as "n=1").
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from scipy.stats import t as student_t


@dataclass(frozen=True)
class Summary:
    mean: float
    half: float  # half-width of the confidence interval (NaN for one value)
    n: int
    sd: float

    @property
    def lo(self) -> float:
        return self.mean - self.half

    @property
    def hi(self) -> float:
        return self.mean + self.half

    def fmt(self, digits: int = 3, scale: float = 1.0) -> str:
        """``0.512 ± 0.031`` (or ``0.512 (n=1)``), values multiplied by ``scale``."""
        m = self.mean * scale
        if self.n < 2 or math.isnan(self.half):
            return f"{m:.{digits}f} (n={self.n})"
        return f"{m:.{digits}f} ± {self.half * scale:.{digits}f}"


def mean_ci(values: Iterable[float], level: float = 0.95) -> Summary:
    """Mean and t-interval half-width of ``values`` (NaNs are an error: a metric missing
    from a run must be noticed, not averaged away)."""
    xs = [float(v) for v in values]
    if not xs:
        raise ValueError("mean_ci needs at least one value")
    if any(math.isnan(x) for x in xs):
        raise ValueError(f"mean_ci got NaN among {xs}")
    n = len(xs)
    mean = math.fsum(xs) / n
    if n < 2:
        return Summary(mean, math.nan, 1, math.nan)
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    q = float(student_t.ppf(0.5 + level / 2, n - 1))
    return Summary(mean, q * sd / math.sqrt(n), n, sd)

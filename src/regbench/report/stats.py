"""Aggregation over seeds: mean with a Student-t 95% confidence interval.

With n seeds, mean +- t_{0.975, n-1} * s / sqrt(n), s the sample standard deviation.
One seed gives no interval (half-width reported as NaN, printed as "n=1").
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


def t_two_sided(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with integer ``df`` >= 1, in closed form
    (Abramowitz & Stegun 1964, 26.7.3-26.7.4, theta = atan(t / sqrt(df)))."""
    if df < 1 or int(df) != df:
        raise ValueError(f"df must be an integer >= 1, got {df!r}")
    theta = math.atan(abs(t) / math.sqrt(df))
    c2, s = math.cos(theta) ** 2, math.sin(theta)
    if df % 2 == 1:  # odd: (2/pi) [theta + sin cos (1 + 2/3 c^2 + 2*4/(3*5) c^4 + ...)]
        term, total = 1.0, 1.0 if df > 1 else 0.0
        for k in range(1, (df - 1) // 2):
            term *= (2 * k) / (2 * k + 1) * c2
            total += term
        return 2 / math.pi * (theta + s * math.cos(theta) * total)
    term, total = 1.0, 1.0  # even: sin [1 + 1/2 c^2 + 1*3/(2*4) c^4 + ...]
    for k in range(1, df // 2):
        term *= (2 * k - 1) / (2 * k) * c2
        total += term
    return s * total


def t_quantile(level: float, df: int) -> float:
    """The t with P(|T| <= t) = ``level`` (so t_{(1+level)/2, df}), by bisection."""
    lo, hi = 0.0, 1.0
    while t_two_sided(hi, df) < level:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_two_sided(mid, df) < level else (lo, mid)
    return (lo + hi) / 2


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
    q = t_quantile(level, n - 1)
    return Summary(mean, q * sd / math.sqrt(n), n, sd)

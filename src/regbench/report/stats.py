"""Statistics over seeds: the mean with its Student-t interval, one-sided t-tests, and the
exact binomial test with its Clopper-Pearson interval. Distributions come from
``scipy.stats`` (quantiles and tail probabilities computed to double precision; the
project used to invert the t distribution by hand).

- Mean: with n seeds, mean +- t_{0.975, n-1} s / sqrt(n), s the sample standard
  deviation. One seed gives no interval (half-width NaN, printed as "n=1").
- One-sided t-tests (Student 1908): p-values of H1: mu > b and H1: mu < b from
  T = (mean - b) / (s / sqrt(n)) with n - 1 degrees of freedom. The 95% two-sided
  interval lies above b exactly when the first p-value is below 0.025.
- Binomial: k of n seeds on one side; P(X >= k) and P(X <= k) under X ~ Bin(n, p0)
  (the sign test, Dixon & Mood 1946, when p0 = 1/2), and the exact two-sided interval
  on k / n (Clopper & Pearson 1934, Biometrika 26:404), which lies above p0 exactly when
  P(X >= k) < (1 - level) / 2.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from scipy import stats as sps


def t_quantile(level: float, df: int) -> float:
    """The t with P(|T| <= t) = ``level`` for Student's t with ``df`` degrees of freedom,
    i.e. t_{(1 + level)/2, df} (t_{0.975, 2} = 4.303)."""
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df!r}")
    return float(sps.t.ppf((1 + level) / 2, df))


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


def t_pvalues(s: Summary, bound: float) -> tuple[float, float]:
    """One-sided p-values (H1: mu > bound, H1: mu < bound) of the t-test on ``s``.

    Zero spread (every value equal) is the test's limit: p = 0 on the side the mean lies
    strictly on, 1 on the other (and 1 for both when the mean equals ``bound``)."""
    if s.n < 2:
        raise ValueError("a t-test needs at least 2 values")
    diff = s.mean - bound
    if s.sd == 0:
        return (0.0 if diff > 0 else 1.0), (0.0 if diff < 0 else 1.0)
    t = diff / (s.sd / math.sqrt(s.n))
    return float(sps.t.sf(t, s.n - 1)), float(sps.t.cdf(t, s.n - 1))


def binomial_pvalues(k: int, n: int, p0: float = 0.5) -> tuple[float, float]:
    """Exact one-sided p-values of k successes in n trials: P(X >= k), P(X <= k) under
    X ~ Bin(n, p0)."""
    return float(sps.binom.sf(k - 1, n, p0)), float(sps.binom.cdf(k, n, p0))


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) two-sided interval on a binomial proportion k / n."""
    ci = sps.binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    return float(ci.low), float(ci.high)

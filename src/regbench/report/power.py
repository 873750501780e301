"""Seeds for a rerun: how many seeds would detect the observed effect with 80% power.

The old "seeds needed" was the n at which the observed mean would just clear the
boundary: a rerun of that size succeeds about half the time (50% power). Planning a
rerun wants the n at which the test rejects with probability 0.8 if the true effect is
the observed one (Cohen 1988, "Statistical Power Analysis", ch. 2; for seeds: Colas,
Sigaud & Oudeyer 2018, arXiv 1806.08295). The observed effect stands in for the true
one, so the number is a plan, not a promise.

- t-test: one-sided at level alpha against a boundary the true mean lies ``d`` standard
  deviations past; power = P(T' > t_{1-alpha, n-1}) with T' noncentral t, n - 1 degrees
  of freedom, noncentrality d sqrt(n) (``scipy.stats.nct``). Power rises with n, so the
  smallest n is found by doubling then bisection.
- Equivalence (TOST, both boundaries): power >= P_lower + P_upper - 1, the Bonferroni
  lower bound of the two one-sided powers (the exact value needs Owen's Q function:
  Phillips 1990, J. Pharmacokinet. Biopharm. 18:137); the n it gives is conservative.
- Binomial (a position claim): power = P(X >= k_crit(n)) with X ~ Bin(n, pi), pi the
  observed fraction and k_crit the smallest count the exact test at alpha rejects on.
  This power saw-tooths in n (the test is discrete), so n is searched one by one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

POWER = 0.8
MAX_SEEDS = 1000  # past this a rerun is no plan: reported as "more than 1000"


def t_power(d: float, n: int, alpha: float) -> float:
    """Power of the one-sided one-sample t-test at ``alpha`` with ``n`` values when the
    true mean lies ``d`` standard deviations past the boundary."""
    df = n - 1
    return float(sps.nct.sf(sps.t.ppf(1 - alpha, df), df, d * math.sqrt(n)))


def _tost_power(ds: Sequence[float], n: int, alpha: float) -> float:
    return sum(t_power(d, n, alpha) for d in ds) - (len(ds) - 1)


def seeds_t(ds: Sequence[float], alpha: float, n_min: int = 2, power: float = POWER) -> int:
    """Fewest n >= max(2, n_min) at which every one-sided test against ``ds`` (standardized
    margins > 0: one for a one-sided claim, two for TOST) rejects with joint probability
    at least ``power``; MAX_SEEDS + 1 when even MAX_SEEDS would not do."""
    if any(not d > 0 for d in ds):
        raise ValueError(f"standardized margins must be > 0, got {list(ds)}")
    lo = max(2, n_min)
    if _tost_power(ds, lo, alpha) >= power:
        return lo
    hi = lo
    while _tost_power(ds, hi, alpha) < power:  # power rises with n: double, then bisect
        if hi >= MAX_SEEDS:
            return MAX_SEEDS + 1
        lo, hi = hi, min(2 * hi, MAX_SEEDS)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if _tost_power(ds, mid, alpha) < power else (lo, mid)
    return hi


def binomial_power(pi: float, n: int, alpha: float, p0: float = 0.5) -> float:
    """Power of the exact one-sided test of p > p0 at ``alpha`` with ``n`` trials when the
    true success probability is ``pi``."""
    ks = np.arange(n + 1)
    reject = sps.binom.sf(ks - 1, n, p0) < alpha  # P(X >= k) under the null
    if not reject.any():
        return 0.0
    k_crit = int(ks[reject][0])
    return float(sps.binom.sf(k_crit - 1, n, pi))


def seeds_binomial(pi: float, alpha: float, n_min: int, power: float = POWER) -> int:
    """Fewest n >= n_min at which the exact one-sided binomial test of p > 1/2 reaches
    ``power`` when the true fraction is ``pi`` (> 1/2); MAX_SEEDS + 1 past MAX_SEEDS."""
    if not pi > 0.5:
        raise ValueError(f"the fraction must be above 1/2, got {pi}")
    for n in range(max(1, n_min), MAX_SEEDS + 1):
        if binomial_power(pi, n, alpha) >= power:
            return n
    return MAX_SEEDS + 1

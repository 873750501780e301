"""Report machinery: t-interval aggregation, verdict logic and rebuilding from a real
MLflow store (runs logged through regbench.tracking, no training)."""

from __future__ import annotations

import math

import pytest

from regbench.report import mean_ci, table
from regbench.reproductions.epoch_double_descent import bump


def test_mean_ci_is_the_student_t_interval():
    s = mean_ci([1.0, 2.0, 3.0])
    assert s.mean == 2.0 and s.sd == pytest.approx(1.0) and s.n == 3
    # t_{0.975, 2} = 4.302653; half-width = t * sd / sqrt(3)
    assert s.half == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert (s.lo, s.hi) == pytest.approx((2 - s.half, 2 + s.half))
    assert mean_ci([5.0, 5.0]).half == 0.0
    one = mean_ci([0.25])
    assert math.isnan(one.half) and one.fmt(2, 100) == "25.00 (n=1)"
    assert s.fmt(1) == "2.0 ± 2.5"
    with pytest.raises(ValueError, match="NaN"):
        mean_ci([1.0, float("nan")])


@pytest.mark.parametrize(
    # two-sided 95% and 99% points of Student's t (standard tables, 4 decimals)
    ("level", "df", "table_value"),
    [
        (0.95, 1, 12.7062),
        (0.95, 2, 4.3027),
        (0.95, 3, 3.1824),
        (0.95, 4, 2.7764),
        (0.95, 9, 2.2622),
        (0.95, 29, 2.0452),
        (0.99, 5, 4.0321),
        (0.99, 20, 2.8453),
    ],
)
def test_t_quantile_matches_the_tables(level, df, table_value):
    from scipy import stats as sps

    from regbench.report.stats import t_quantile

    q = t_quantile(level, df)
    assert q == pytest.approx(table_value, abs=6e-5)
    assert sps.t.cdf(q, df) - sps.t.cdf(-q, df) == pytest.approx(level, abs=1e-12)


def test_table():
    assert table(["a", "b"], [[1, "x"]]) == "| a | b |\n|---|---|\n| 1 | x |"


def test_bump_finds_the_rise_above_the_running_minimum():
    assert bump([1.0, 0.5, 0.8, 0.2]) == (1, 2, pytest.approx(0.3))
    assert bump([1.0, 0.9, 0.8])[2] == 0.0  # monotone: no bump
    # the rise is measured from the minimum *before* the peak, not the global one
    assert bump([0.6, 0.4, 0.7, 0.1, 0.3]) == (1, 2, pytest.approx(0.3))

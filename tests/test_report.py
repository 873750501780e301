"""Report machinery: t-interval aggregation, verdict logic and rebuilding from a real
MLflow store (runs logged through regbench.tracking, no training)."""

from __future__ import annotations

import math

import pytest

from regbench.report import Verdict, load_runs, mean_ci, table, verdict_block
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
    from regbench.report.stats import t_quantile, t_two_sided

    q = t_quantile(level, df)
    assert q == pytest.approx(table_value, abs=6e-5)
    assert t_two_sided(q, df) == pytest.approx(level, abs=1e-12)


def test_table_and_verdict_lines():
    assert table(["a", "b"], [[1, "x"]]) == "| a | b |\n|---|---|\n| 1 | x |"
    block = verdict_block([Verdict("c1", True, "1.0"), Verdict("c2", False, "2.0")])
    assert block.splitlines()[0] == "## Verdicts: 1/2 PASS"
    assert "- **FAIL** c2: 2.0" in block and "- **PASS** c1: 1.0" in block


def test_bump_finds_the_rise_above_the_running_minimum():
    assert bump([1.0, 0.5, 0.8, 0.2]) == (1, 2, pytest.approx(0.3))
    assert bump([1.0, 0.9, 0.8])[2] == 0.0  # monotone: no bump
    # the rise is measured from the minimum *before* the peak, not the global one
    assert bump([0.6, 0.4, 0.7, 0.1, 0.3]) == (1, 2, pytest.approx(0.3))


def _log_vs_run(experiment, placement, rate, seed, shift, reest, test, test_reest, tr, ev):
    from regbench import tracking

    with tracking.tracked_run(experiment, f"{placement}-{rate}-s{seed}") as run:
        tracking.log_params(
            run.client,
            run.run_id,
            {"vs_placement": placement, "vs_rate": str(rate), "seed": str(seed)},
        )
        run.log_metrics(
            {
                "diag/var_shift/bn1": shift,
                "diag/var_shift/bn2": shift,
                "diag/var_shift_reest/bn1": reest,
                "diag/var_shift_reest/bn2": reest,
                "diag/test_acc": test,
                "diag/test_acc_reest": test_reest,
                "diag/train_acc_trainmode": tr,
                "diag/train_acc_evalmode": ev,
            }
        )


def test_variance_shift_report_from_mlflow_is_rebuilt_identically(experiment, tmp_path):
    from regbench.reproductions.variance_shift import VarianceShift

    for seed, eps in enumerate([0.0, 0.02]):
        for rate in (0.1, 0.3, 0.5):
            _log_vs_run(experiment, "none", rate, seed, 1.02, 1.01, 0.73, 0.73, 0.9, 0.95)
            _log_vs_run(
                experiment, "head", rate, seed, 1.03 + eps / 10, 1.01, 0.72, 0.72, 0.88, 0.95
            )
            _log_vs_run(
                experiment,
                "before_bn",
                rate,
                seed,
                1 + 4 * rate + eps,
                1.01,
                0.5 + eps,
                0.6 + eps,
                0.5,
                0.3,
            )
            _log_vs_run(experiment, "uout", rate, seed, 1 + rate / 10, 1.0, 0.7, 0.7, 0.9, 0.9)
    # a rerun of one (point, seed): the newest finished run replaces the older one
    _log_vs_run(experiment, "none", 0.1, 0, 1.02, 1.01, 0.73, 0.73, 0.9, 0.95)
    runs = load_runs(experiment, key=lambda r: (r.p("vs_placement"), r.p("vs_rate"), r.seed))
    assert len(runs) == 24

    repro = VarianceShift()
    a = repro.analyse(experiment, "cpu", tmp_path)
    b = repro.analyse(experiment, "cpu", tmp_path)
    assert a.markdown == b.markdown
    assert [v.line() for v in a.verdicts] == [v.line() for v in b.verdicts]
    assert all(v.passed for v in a.verdicts), [v.line() for v in a.verdicts]
    # before BN at 0.5: mean over layers and seeds of 3 + eps
    assert "3.01 ± " in a.verdicts[0].measured
    assert (tmp_path / "variance_shift.png").stat().st_size > 10_000

    # one violated claim flips its verdict only
    for seed in range(2):
        _log_vs_run(experiment, "head", 0.5, seed, 1.2, 1.01, 0.72, 0.72, 0.88, 0.95)
    c = repro.analyse(experiment, "cpu", tmp_path)
    assert [v.passed for v in c.verdicts] == [True, True, False, True, True, True]
    assert "dropout after last BN at 0.5: 1.200" in c.verdicts[2].measured


def test_variance_shift_report_with_no_dropout_run_at_one_rate(experiment, tmp_path):
    """`reproduce` runs `none` (no dropout: the rate changes nothing) at the first rate only;
    its one row and flat line stand for every rate."""
    from regbench.reproductions.variance_shift import VarianceShift

    for seed, eps in enumerate([0.0, 0.02]):
        _log_vs_run(experiment, "none", 0.1, seed, 1.02 + eps, 1.01, 0.73, 0.73, 0.9, 0.95)
        for rate in (0.1, 0.3, 0.5):
            _log_vs_run(experiment, "head", rate, seed, 1.03, 1.01, 0.72, 0.72, 0.88, 0.95)
            _log_vs_run(
                experiment, "before_bn", rate, seed, 1 + 4 * rate + eps, 1.01, 0.5 + eps,
                0.6 + eps, 0.5, 0.3,
            )  # fmt: skip
            _log_vs_run(experiment, "uout", rate, seed, 1 + rate / 10, 1.0, 0.7, 0.7, 0.9, 0.9)
    rep = VarianceShift().analyse(experiment, "cpu", tmp_path)
    assert all(v.passed for v in rep.verdicts), [v.line() for v in rep.verdicts]
    assert rep.markdown.count("| no dropout | - |") == 1
    assert (tmp_path / "variance_shift.png").stat().st_size > 10_000

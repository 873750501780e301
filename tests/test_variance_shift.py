"""variance_shift: the formula and noise floor, claims on runs logged to a real MLflow
store (no training), and the tiny scale end to end through `regbench reproduce`."""

from __future__ import annotations

import math

import pytest

from regbench.report import load_runs, report_dir
from regbench.report.axes import group_by_axes
from regbench.report.claims import INCONCLUSIVE, REFUTED, SUPPORTED
from regbench.reproductions import variance_shift as vs


def test_formula_and_running_variance_noise():
    assert vs.theory("before_bn", 0.5) == pytest.approx(2.0)  # 1/p at zero mean
    assert vs.theory("before_bn", 0.5, q=1.0) == pytest.approx((1 + 1) / 0.5 - 1)
    assert vs.theory("uout", 0.5) == pytest.approx((3 + 0.25) / 3)
    assert vs.theory("head", 0.5, q=3.0) == 1.0
    # docs/REPRODUCTIONS.md section 1: sqrt(2m / ((2 - m) B)) for Gaussian inputs
    assert vs.ema_sd(0.1, 64) == pytest.approx(math.sqrt(0.2 / (1.9 * 64)))
    # dropout at retain p multiplies the kurtosis by 1/p: k = 6 at p = 0.5
    assert vs.ema_sd(0.1, 64, "before_bn", 0.5) == pytest.approx(math.sqrt(0.5 / (1.9 * 64)))


def _log(experiment, placement, rate, seed, bn1, q=0.5, shift=None, reest=1.001, gain=0.05):
    from regbench import tracking

    with tracking.tracked_run(experiment, f"{placement}-{rate}-s{seed}") as run:
        params = {"vs_placement": placement, "vs_rate": str(rate), "seed": str(seed),
                  "model.norm_momentum": "0.1", "data.batch_size": "64"}  # fmt: skip
        tracking.log_params(run.client, run.run_id, params)
        run.log_metrics({
            "diag/var_shift/bn1": bn1, "diag/var_shift/bn2": shift or bn1,
            "diag/var_shift_reest/bn1": reest, "diag/var_shift_reest/bn2": reest,
            "diag/bn_input_q/bn1": q, "diag/test_acc": 0.6, "diag/test_acc_reest": 0.6 + gain,
            "diag/train_acc_trainmode": 0.8, "diag/train_acc_evalmode": 0.7,
        })  # fmt: skip


def _grid(experiment, eps=(0.0, 0.004, -0.004)):
    for seed, e in enumerate(eps):
        _log(experiment, "none", 0.1, seed, 1.02 + e)
        for rate in (0.1, 0.5):
            _log(experiment, "head", rate, seed, 1.03 + e)
            _log(experiment, "before_bn", rate, seed, vs.theory("before_bn", rate, 0.5) + e)
            _log(experiment, "uout", rate, seed, vs.theory("uout", rate, 0.5) + e)


def test_claims_from_logged_runs_and_one_violation_flips_only_its_claim(experiment, tmp_path):
    _grid(experiment)
    _log(experiment, "none", 0.1, 0, 1.02)  # a rerun of one point: the newest run wins
    groups = group_by_axes(load_runs(experiment), {"vs_placement": str, "vs_rate": float})
    assert len(groups) == 7 and all(len(rs) == 3 for rs in groups.values())
    assert [r.seed for r in groups["before_bn", 0.5]] == [0, 1, 2]

    rep = vs.VarianceShift().analyse(experiment, "cpu", tmp_path)
    status = {v.claim.key: v.status for v in rep.claims}
    assert status == dict.fromkeys(status, SUPPORTED) and len(status) == 7
    assert rep.markdown == vs.VarianceShift().analyse(experiment, "cpu", tmp_path).markdown
    assert (tmp_path / "variance_shift.png").stat().st_size > 10_000
    # the floor is derived from the logged momentum and batch size: 1 + 2 x 0.0406
    floor = next(v for v in rep.claims if v.claim.key == "floor_none").claim.threshold
    assert floor == pytest.approx(1 + 2 * math.sqrt(0.2 / (1.9 * 64)))

    for seed in range(3):  # dropout after the last BN now shifts by 1.2: above the floor
        _log(experiment, "head", 0.5, seed, 1.2 + 0.01 * seed)
    claims = vs.VarianceShift().analyse(experiment, "cpu", tmp_path).claims
    status = {v.claim.key: v.status for v in claims}
    assert status.pop("floor_head") == REFUTED
    assert status == dict.fromkeys(status, SUPPORTED)


def test_tiny_scale_end_to_end(capsys):
    """Two seeds, fewer than any claim needs: every claim INCONCLUSIVE, and says so."""
    from regbench.reproductions import main

    main("reproduce", ["variance_shift", "--scale", "tiny", "--n-jobs", "1"])
    out = capsys.readouterr().out
    # the terminal: the verdicts and where the report is, not the report's markdown
    assert "variance_shift (tiny scale): 0 SUPPORTED, 0 REFUTED, 7 INCONCLUSIVE" in out
    lines = [line for line in out.splitlines() if line.startswith(f"  {INCONCLUSIVE}")]
    assert len(lines) == 7 and all("2 seeds, needs 3" in r for r in lines)
    assert "| no dropout |" not in out and "![" not in out
    path = report_dir("variance_shift", "tiny") / "report.md"
    assert f"report: {path} " in out
    text = path.read_text()
    assert "## Claims: 0 SUPPORTED, 0 REFUTED, 7 INCONCLUSIVE" in text
    rows = [line for line in text.splitlines() if f"**{INCONCLUSIVE}**" in line]
    assert len(rows) == 7 and all("2 seeds, needs 3" in r for r in rows)
    assert "| no dropout | - |" in text and "| dropout before BN | 0.5 |" in text

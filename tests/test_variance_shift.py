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
    # every quantity varies over seeds: equal values would be judged by the sign test
    for seed, e in enumerate(eps):
        _log(experiment, "none", 0.1, seed, 1.02 + e)
        for rate in (0.1, 0.5):
            _log(experiment, "head", rate, seed, 1.03 + e)
            bn1 = vs.theory("before_bn", rate, 0.5) + e
            _log(experiment, "before_bn", rate, seed, bn1, reest=1.001 + e, gain=0.05 + e)
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
    """Three seeds at tiny scale (300 samples, 2 epochs): BN's running variance has seen
    about 10 updates, so the shifts are far from the formula and the floor; those strong
    effects are decided, family-wise too. Random claims near a threshold are not pinned."""
    import json

    from regbench.reproductions import main

    main("reproduce", ["variance_shift", "--scale", "tiny", "--seeds", "3", "--n-jobs", "1"])
    out = capsys.readouterr().out
    # the terminal: the verdicts by role and where the report is, not the report's markdown
    assert out.count("variance_shift (tiny scale): findings ") == 1 and "checks " in out
    lines = [line for line in out.splitlines() if ", claim " in line]  # one per claim
    assert len(lines) == 7 and sum("[check]" in line for line in lines) == 3
    assert "| no dropout |" not in out and "![" not in out
    path = report_dir("variance_shift", "tiny") / "report.md"
    assert f"report: {path} " in out
    text = path.read_text()
    assert "## Claims" in text and "### Checks" in text
    assert "| no dropout | - |" in text and "| dropout before BN | 0.5 |" in text
    data = json.loads((report_dir("variance_shift", "tiny") / "claims.json").read_text())
    v = {c["key"]: c for c in data["claims"]}
    # the first BN's shift after 2 epochs is about 1.5, far below 1/p = 2 (p ~ 1e-3)
    assert (v["above_zero_mean"]["status"], v["above_zero_mean"]["family_status"]) == (
        REFUTED,
        REFUTED,
    )
    assert v["above_zero_mean"]["p_value"] < v["above_zero_mean"]["holm_level"] / 3
    # checks: never in the family, judged per claim
    assert v["floor_none"]["status"] == REFUTED and not v["floor_none"]["in_family"]
    assert v["reest_floor"]["status"] == SUPPORTED and v["reest_floor"]["role"] == "check"
    assert {c["key"] for c in data["claims"] if c["in_family"]} == {
        "formula_before_bn",
        "formula_uout",
        "above_zero_mean",
        "reest_gain",
    }
    assert sum(data["counts"]["check"].values()) == 3
    assert v["formula_before_bn"]["related"] == ["above_zero_mean"]  # the same bn1 shift
    assert all(c["status"] != INCONCLUSIVE or "80% power" in c["note"] for c in data["claims"])

"""epoch_double_descent: the second-descent statistic, the claims on hand-made curves, and
the tiny scale end to end (child runs, resume, report rebuilt from MLflow, verdicts)."""

from __future__ import annotations

import pytest

from conftest import runs_of
from regbench.report.claims import INCONCLUSIVE, REFUTED, SUPPORTED
from regbench.reproductions import epoch_double_descent as edd


def test_second_descent_is_zero_for_a_single_minimum_and_the_bump_depth_otherwise():
    assert edd.second_descent([1.0, 0.8, 0.5, 0.4]) == 0.0  # monotone
    assert edd.second_descent([1.0, 0.4, 0.6, 0.9]) == 0.0  # one minimum, then over-fitting
    # falls to 0.4, rises to 0.7, falls to 0.5: depth min(0.3, 0.2)
    assert edd.second_descent([1.0, 0.4, 0.7, 0.5]) == pytest.approx(0.2)
    assert edd.second_descent([1.0, 0.4, 0.7, 0.1]) == pytest.approx(0.3)
    assert edd.bump([1.0, 0.4, 0.6, 0.9])[2] == pytest.approx(0.5)  # "no rise" would fail it


def _arms(n_draws: int, depth: float) -> dict:
    """Equal arm with a bump of ``depth``, reduced arm monotone and lower at its minimum."""
    steps = [1, 10, 100, 1000]
    eq = {(0, b): [1.0, 0.5, 0.5 + depth + 0.01 * b, 0.4] for b in range(n_draws)}
    red = {(0, b): [1.0, 0.45, 0.35 - 0.001 * b, 0.3 - 0.002 * b] for b in range(n_draws)}
    return {"equal": (steps, eq), "fast_reduced": (steps, red)}


def test_claims_on_hand_made_curves():
    verdicts = edd.judge_mechanism("linear", _arms(4, 0.2), "equal", "fast_reduced")
    out = {v.claim.key: v for v in verdicts}
    assert {k: v.status for k, v in out.items()} == {
        "linear_dd": SUPPORTED,
        "linear_headline": SUPPORTED,
        "linear_single": SUPPORTED,
    }
    assert out["linear_headline"].summary.mean == pytest.approx(0.3 - 0.003 - 0.4)
    # a bump that does not fall again (over-fitting) is no second descent: depth 0 on every
    # draw, below the tolerance; equal values go to the sign test, 0 of 4 is undecided
    arms = _arms(4, 0.2)
    arms["equal"][1].update({(0, b): [1.0, 0.5, 0.6, 0.7] for b in range(4)})
    flat = edd.judge_mechanism("linear", arms, "equal", "fast_reduced")[0]
    assert flat.values == (0.0,) * 4 and flat.status == INCONCLUSIVE
    assert flat.note.startswith("every value equal: judged by the sign test")
    # a reduced arm with a second descent fails the exact sanity check
    arms["fast_reduced"][1][0, 1] = [1.0, 0.3, 0.5, 0.2]
    assert edd.judge_mechanism("linear", arms, "equal", "fast_reduced")[2].status == REFUTED


def test_one_tolerance_decides_both_shapes():
    """A wobble of 0.005 (half the tolerance) is a single minimum and no second descent; a
    bump of 0.02 is a second descent and no single minimum: no curve passes both (they were
    "> 0" and "< 0.01")."""
    for depth, twice, single in ((0.005, REFUTED, SUPPORTED), (0.02, SUPPORTED, REFUTED)):
        curves = {(0, b): [1.0, 0.5, 0.5 + depth + 0.0001 * b, 0.4] for b in range(6)}
        arms = {"authors_same": ([1, 10, 100, 1000], curves),
                "authors_scaled": ([1, 10, 100, 1000], curves)}  # fmt: skip
        out = {v.claim.key: v for v in edd.judge_mechanism(
            "authors", arms, "authors_same", "authors_scaled")}  # fmt: skip
        assert (out["authors_dd"].status, out["authors_single"].status) == (twice, single)
        assert out["authors_dd"].claim.threshold == out["authors_single"].claim.threshold
    roles = {c.key: c.role for m in ("linear", "authors", "two_layer")
             for c in edd.claims(m).values()}  # fmt: skip
    assert {k for k, r in roles.items() if r == "finding"} == {
        "linear_dd",
        "linear_headline",
        "authors_dd",
        "authors_headline",
        "authors_single",
    }


def test_tiny_scale_end_to_end(experiment):
    repro = edd.EpochDoubleDescent()
    repro.experiment_name = lambda scale: experiment
    repro.train("tiny", [0], 1)
    runs = {r.info.run_name: r for r in runs_of(experiment)}
    arms = ["teacher_student-equal-s0", "teacher_student-fast_reduced-s0",
            "authors_same-s0", "authors_scaled-s0",
            "two_layer_equal-s0", "two_layer_fast_reduced-s0", "two_layer_control-s0"]  # fmt: skip
    assert set(arms) < set(runs)
    control, equal = runs["two_layer_control-s0"], runs["two_layer_equal-s0"]
    assert (control.data.params["directions"], equal.data.params["directions"]) == ("250", "40")
    parent = equal.data.tags["mlflow.parentRunId"]
    assert all(runs[a].data.tags["mlflow.parentRunId"] == parent for a in arms)
    repro.train("tiny", [0], 1)  # resumes: every arm finished, only a new parent run
    assert len(runs_of(experiment)) == len(runs) + 1

    from regbench.reproductions.base import build_report

    report = build_report(repro, "tiny").read_text()
    assert report == build_report(repro, "tiny").read_text()  # rebuilt from MLflow alone
    assert "published" not in report.lower().replace("nothing below is a published", "")
    assert "constructed instance" in report and "monotone by construction" in report
    rep = repro.analyse(experiment, "tiny", build_report(repro, "tiny").parent)
    status = {v.claim.key: (v.status, v.note) for v in rep.claims}
    # the sanity check is exact: monotone by construction at any length
    assert status.pop("linear_single")[0] == SUPPORTED
    # every other claim: 2 draws, fewer than the 3 each claim needs
    assert len(status) == 9, status
    assert all(s == INCONCLUSIVE for s, _ in status.values()), status
    assert all("2 seeds, needs 3" in n for _, n in status.values()), status
    assert "Heckel & Yilmaz's own setting" in report

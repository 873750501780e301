"""random_features_dd: the chunked dual solve is the min-norm least-squares solution, and
the tiny scale end to end with its verdicts."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import runs_of


def test_dual_solve_matches_pinv_min_norm_solution(monkeypatch):
    from regbench.reproductions import random_features_dd as rf

    monkeypatch.setattr(rf, "CHUNK", 7)  # several chunks per size
    g = torch.Generator().manual_seed(0)
    x, xt = torch.randn(20, 5, generator=g), torch.randn(9, 5, generator=g)
    labels, labels_t = (
        torch.randint(0, 10, (20,), generator=g),
        torch.randint(0, 10, (9,), generator=g),
    )
    y = torch.nn.functional.one_hot(labels, 10).double()
    w, b = torch.randn(5, 60, generator=g), torch.rand(60, generator=g) * 2 * math.pi
    recs = dict(rf.dual(x, xt, w, b, y, {"y": labels, "y_test": labels_t}, [30, 60]))
    for size in (30, 60):
        c = rf.features(x, w[:, :size], b[:size]).double() * math.sqrt(2 / size)
        beta = torch.linalg.pinv(c) @ y  # min-norm least squares
        assert recs[size]["norm"] == pytest.approx(float(beta.norm()), rel=1e-6)
        pred = rf.features(xt, w[:, :size], b[:size]).double() * math.sqrt(2 / size) @ beta
        mse = float(((pred - torch.nn.functional.one_hot(labels_t, 10)) ** 2).sum(1).mean())
        assert recs[size]["test/mse"] == pytest.approx(mse, rel=1e-6)
        assert recs[size]["train/err"] == 0.0  # N > n interpolates


def test_random_features_dd_tiny_verdicts(experiment):
    from regbench.report.family import holm
    from regbench.reproductions.base import build_report
    from regbench.reproductions.random_features_dd import RandomFeaturesDD

    repro = RandomFeaturesDD()
    repro.experiment_name = lambda scale: experiment
    repro.train("tiny", list(range(6)), 1)
    assert len(runs_of(experiment)) == 1 + 6
    out = build_report(repro, "tiny").parent
    rep = repro.analyse(experiment, "tiny", out)
    fam = {v.claim.key: v for v in holm(rep.claims)}
    # tiny (n = 400): min-norm least squares peaks at N = n in every draw (the square
    # system), so the positions are 6 of 6 in their windows: SUPPORTED per claim by the
    # sign test (p = 1/64), but not family-wise: 1/64 >= 0.025/3, Holm's second step
    for key in ("peak", "norm_peak"):
        v = fam[key]
        assert v.values == (1.0,) * 6 and (v.position.k, v.position.n) == (6, 6)
        assert (v.status, v.family_status) == ("SUPPORTED", "INCONCLUSIVE")
        assert v.p_value == pytest.approx(1 / 64)
        assert v.seeds_80_family == 8  # 1/256 < 0.025/4 (Bonferroni: Holm's strictest step)
    assert fam["peak"].family_note.startswith("Holm step 2 of 4: p = 0.016 ≥ 0.025/3")
    assert fam["norm_peak"].family_note.startswith("Holm stopped at step 2 of 4")
    # the peak is too low for 2x (error near 75% already at 0.5n): strongly REFUTED
    h = fam["peak_height"]
    assert (h.status, h.family_status) == ("REFUTED", "REFUTED") and h.p_value < 1e-4
    assert h.related == ("peak", "second_descent")  # read off the same test-error curve
    assert (out / "random_features_dd.png").exists()

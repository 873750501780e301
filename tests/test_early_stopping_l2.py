"""early_stopping_l2: the spectral closed-form risks against a direct computation, and the
tiny scale end to end with its verdicts."""

from __future__ import annotations

import pytest
import torch

from conftest import runs_of


@pytest.mark.parametrize("p", [6, 14])  # p < n and p > n
def test_closed_form_risks_match_matrix_exponential_and_ridge_solve(p):
    from regbench.reproductions.early_stopping_l2 import SETUP, make_draw, risks

    n, t = 10, 0.7
    d = make_draw(n, p, seed=3)
    x, sig, beta0 = d["x"], d["sig"], d["beta0"]
    cov = x.T @ x / n
    # gradient flow from 0: b(t) = (I - exp(-t S)) S^+ X^T y / n; ridge: (S + I/t)^-1 X^T y / n
    ops = {
        "gf": (torch.eye(p, dtype=x.dtype) - torch.linalg.matrix_exp(-t * cov))
        @ torch.linalg.pinv(cov, hermitian=True),
        "ridge": torch.linalg.inv(cov + torch.eye(p, dtype=x.dtype) / t),
    }
    r = risks(d, torch.tensor([t], dtype=torch.float64))
    for name, g in ops.items():
        a = g @ x.T / n  # b = a y = a X beta0 + a eps
        bias = a @ x @ beta0 - beta0
        noise = SETUP["sigma"] ** 2 * a @ a.T  # covariance of a eps
        est = bias @ bias + noise.trace()
        pred = bias @ (sig * bias) + (sig * noise.diagonal()).sum()
        assert float(r[f"{name}/est"][0]) == pytest.approx(float(est), rel=1e-9)
        assert float(r[f"{name}/pred"][0]) == pytest.approx(float(pred), rel=1e-9)


def test_early_stopping_l2_tiny_verdicts_and_resume(experiment):
    from regbench.reproductions.base import build_report
    from regbench.reproductions.early_stopping_l2 import EarlyStoppingL2

    repro = EarlyStoppingL2()
    repro.experiment_name = lambda scale: experiment
    repro.train("tiny", [0, 1, 2], 1)
    n_runs = len(runs_of(experiment))
    assert n_runs == 1 + 2 * 3
    repro.train("tiny", [0, 1, 2], 1)
    assert len(runs_of(experiment)) == n_runs + 1
    out = build_report(repro, "tiny").parent
    rep = repro.analyse(experiment, "tiny", out)
    assert {v.claim.key: v.status for v in rep.claims} == {
        k: "SUPPORTED"
        for k in ("est_150", "bayes_150", "best_150", "est_400", "bayes_400", "best_400")
    }
    # the theorems' bounds are exact checks, never evidence; the tuned-risk bands are the
    # findings (TOST)
    roles = {v.claim.key: (v.claim.role, v.claim.kind) for v in rep.claims}
    assert roles["est_150"] == roles["bayes_400"] == ("check", "exact")
    assert roles["best_150"] == roles["best_400"] == ("finding", "mean")
    assert (out / "early_stopping_l2.png").exists()

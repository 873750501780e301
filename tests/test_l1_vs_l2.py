"""l1_vs_l2: the scale-free statistic, FISTA against its optimality conditions, the closed-
form test loss against Monte Carlo, and the tiny scale end to end."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import runs_of


def test_small_frac_of_a_gaussian_is_the_gaussian_level():
    from regbench.reproductions.sparse_logistic import GAUSS, small_frac

    w = torch.randn(2_000_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert abs(float(small_frac(w)) - GAUSS) < 4 * math.sqrt(GAUSS / 2e6)  # 4 binomial sds
    assert float(small_frac(torch.tensor([0.0, 0.0, 1.0, -1.0]))) == 0.5


def test_fista_l1_solution_satisfies_the_kkt_conditions():
    from regbench.reproductions.sparse_logistic import LAMS, fista, make_data

    d = make_data([4], 200)
    x, y = d["x"][:, :300], d["y"][:, :300]
    w = fista(x, y, "l1", 3000)  # (1, G, d)
    g = 6  # lam = 1e-2
    p = torch.sigmoid(x[0] @ w[0, g])
    grad = x[0].T @ (p - y[0]) / 300  # gradient of the mean log-loss
    nz = w[0, g] != 0
    lam = LAMS[g]
    # KKT of lam ||w||_1: grad = -lam sign(w) on the support, |grad| <= lam off it
    assert torch.allclose(grad[nz], -lam * torch.sign(w[0, g][nz]), atol=1e-6)
    assert bool((grad[~nz].abs() <= lam + 1e-6).all()) and int(nz.sum()) < 200


def test_population_logloss_matches_monte_carlo_and_is_smallest_at_the_truth():
    from regbench.reproductions.sparse_logistic import make_data, population_logloss

    w_star = make_data([3], 12)["w_star"]  # (1, 12): +-1 on the first 10
    g = torch.Generator().manual_seed(1)
    w = torch.stack([w_star[0] * 0.5 + torch.randn(12, generator=g, dtype=torch.float64),
                     3 * w_star[0], torch.zeros(12, dtype=torch.float64)])  # fmt: skip
    exact = population_logloss(w, w_star.expand(3, 12))
    x = torch.randn(400_000, 12, generator=g, dtype=torch.float64)
    z_star, z = x @ w_star[0], x @ w.T  # (N,), (N, 3)
    p = torch.sigmoid(z_star)[:, None]
    f = torch.nn.functional.softplus
    per = p * f(-z) + (1 - p) * f(z)  # the loss's expectation over y given x
    se = per.std(0) / math.sqrt(len(x))
    assert ((exact - per.mean(0)).abs() < 4 * se + 1e-12).all()  # w = 0: se is 0
    assert exact[2] == pytest.approx(math.log(2), abs=1e-12)  # w = 0 predicts 1/2
    bayes = population_logloss(w_star, w_star)
    assert bool((exact > bayes).all())  # the well-specified model's minimum is w*


def test_l1_vs_l2_tiny_verdicts(experiment):
    from regbench.report.family import holm
    from regbench.reproductions.base import build_report
    from regbench.reproductions.l1_vs_l2 import L1VsL2

    repro = L1VsL2()
    repro.experiment_name = lambda scale: experiment
    repro.train("tiny", [0, 1, 2], 1)
    n_runs = len(runs_of(experiment))
    repro.train("tiny", [0, 1, 2], 1)  # resumes: nothing retrained
    assert len([r for r in runs_of(experiment) if "seed" in r.data.params]) == n_runs - 3
    l1 = [r for r in runs_of(experiment) if "reg.l1_prox.strength" in r.data.params]
    assert len(l1) == 3 and {r.data.tags["regbench.exec"][:6] for r in l1} == {"single"}
    out = build_report(repro, "tiny").parent
    rep = repro.analyse(experiment, "tiny", out)
    fam = {v.claim.key: v for v in holm(rep.claims)}
    # tiny: 300 FISTA steps at d = 20 and 200, the MLP 2 epochs. Only the strong effects
    # (|d| > 5 standard deviations from the threshold) are pinned: L2's loss gains far more
    # from d = 20 to 200 than L1's; L1 zeroes most weights at d = 200 but keeps more than
    # the 10 relevant ones (F1 < 0.5: validation log-loss picks a predictive strength);
    # the MLP, 2 epochs from its uniform init, is near the Gaussian level under both
    # penalties (proximal L1's threshold, 1e-5 a step, has had 22 steps)
    expected = {
        "ng_gap": "SUPPORTED",
        "lr_l1": "SUPPORTED",
        "lr_f1": "REFUTED",
        "mlp_l1": "REFUTED",
        "mlp_l2": "SUPPORTED",
    }
    for key, status in expected.items():
        v = fam[key]
        assert abs(v.effect) > 5, key
        assert (v.status, v.family_status) == (status, status), key
    assert fam["ng_gap"].claim.kind == "paired" and fam["ng_l1"].related == ("ng_gap",)
    assert {k: v.claim.role for k, v in fam.items() if v.claim.role == "folk"} == {
        "mlp_l1": "folk",
        "mlp_l2": "folk",
    }
    assert (out / "l1_vs_l2.png").exists()

"""l1_vs_l2: the scale-free statistic, FISTA against its optimality conditions, and the
tiny scale end to end."""

from __future__ import annotations

import math

import torch

from conftest import runs_of


def test_small_frac_of_a_gaussian_is_the_gaussian_level():
    from regbench.reproductions.sparse_logistic import GAUSS, small_frac

    w = torch.randn(2_000_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert abs(float(small_frac(w)) - GAUSS) < 4 * math.sqrt(GAUSS / 2e6)  # 4 binomial sds
    assert float(small_frac(torch.tensor([0.0, 0.0, 1.0, -1.0]))) == 0.5


def test_fista_l1_solution_satisfies_the_kkt_conditions():
    from regbench.reproductions.sparse_logistic import LAMS, fista, make_data

    d = make_data([4])
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
    out = build_report(repro, "tiny").parent
    rep = repro.analyse(experiment, "tiny", out)
    # tiny: 300 FISTA steps; the MLP trains 2 epochs, so its first layer is still close to
    # its (uniform) init: not sparse under L1, Gaussian-like under L2. Only the strong
    # effects are pinned (each p at least 10x below its Holm step); lr_l2 sits near its
    # threshold at tiny scale and could go either way
    fam = {v.claim.key: v for v in holm(rep.claims)}
    expected = {
        "lr_l1": "SUPPORTED",
        "lr_f1": "REFUTED",
        "mlp_l1": "REFUTED",
        "mlp_l2": "SUPPORTED",
    }
    for key, status in expected.items():
        v = fam[key]
        assert (v.status, v.family_status) == (status, status), key
        assert v.p_value < v.holm_level / 10, key
    assert {k: v.claim.role for k, v in fam.items() if v.claim.role == "folk"} == {
        "mlp_l1": "folk",
        "mlp_l2": "folk",
    }
    assert (out / "l1_vs_l2.png").exists()

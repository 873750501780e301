"""The dropout reproductions of the regularization atlas at tiny scale: real Lightning
runs, real MLflow store. Each asserts the verdicts the statistics reach there (the exact
checks, and strong effects with enough seeds); random claims that could go either way at
tiny scale are not pinned."""

from __future__ import annotations

import math

import torch

from conftest import runs_of


def _tiny(repro, experiment: str):
    repro.experiment_name = lambda scale: experiment
    return repro


def test_dropout_scaling_tiny_verdicts_and_exact_reparametrization(experiment, tmp_path):
    from regbench.report import load_runs
    from regbench.reproductions.dropout_eval import load_trained, vanilla_test_factor
    from regbench.reproductions.dropout_scaling import DropoutScaling

    repro = _tiny(DropoutScaling(), experiment)
    repro.train("tiny", [0, 1], 1)
    n_runs = len(runs_of(experiment))
    rep = repro.analyse(experiment, "tiny", tmp_path)
    status = {v.claim.key: (v.status, v.note) for v in rep.claims}
    assert status["exact"][0] == "SUPPORTED"  # the identity, a check
    assert {v.claim.key: v.claim.role for v in rep.claims} == {
        "exact": "check",
        "same_hp": "folk",
        "factor": "finding",
    }
    exact = [r for r in load_runs(experiment) if r.params.get("check") == "exact"]
    assert len(exact) == 4  # 2 rates x 2 seeds
    for r in exact:
        # p = 0.5 is a power of two: dividing by it is exact, so the nets are bit-identical
        if r.params["rate"] == "0.5":
            assert r.metrics["exact/matched_rel_dlogit"] == 0.0
        assert r.metrics["exact/matched_rel_dlogit"] < 1e-13
        assert r.metrics["exact/naive_rel_dlogit"] > 0.05  # the check can fail
    assert (tmp_path / "dropout_scaling.png").stat().st_size > 10_000
    # factor p is the eval-mode rule itself; 1/p multiplies the first layer's input by 1/p^2
    run = next(r for r in load_runs(experiment) if r.params.get("model.dropout_kind") == "vanilla")
    _, model, splits = load_trained(run.run_id)
    x = splits.x_test[:50]
    with torch.no_grad():
        plain = model(x)
        with vanilla_test_factor(model, lambda p: p):
            assert torch.equal(model(x), plain)
        with vanilla_test_factor(model, lambda p: 1 / p):
            assert not torch.allclose(model(x), plain)
        assert torch.equal(model(x), plain)  # hooks removed
    repro.train("tiny", [0, 1], 1)  # resumes: no new child runs, one new exact parent run
    assert len(runs_of(experiment)) == n_runs + 1


def test_mc_vs_weight_scaling_tiny_verdicts_and_geometric_mean_identity(experiment, tmp_path):
    from regbench.reg.inference import mc_log_probs
    from regbench.report import load_runs
    from regbench.reproductions.dropout_eval import load_trained, mask_log_probs
    from regbench.reproductions.mc_vs_weight_scaling import McVsWeightScaling

    repro = _tiny(McVsWeightScaling(), experiment)
    repro.train("tiny", [0, 1], 1)
    rep = repro.analyse(experiment, "tiny", tmp_path)
    status = {v.claim.key: (v.status, v.note) for v in rep.claims}
    assert status["geo"][0] == "SUPPORTED"  # the identity, a check
    mc = {v.claim.key: v for v in rep.claims if v.claim.key in ("mc1", "mc100")}
    assert {k: v.claim.kind for k, v in mc.items()} == {"mc1": "paired", "mc100": "paired"}
    exact = [r for r in load_runs(experiment) if r.params.get("check") == "geometric_mean"]
    assert len(exact) == 6  # 2 head rates x 3 inits
    for r in exact:
        assert r.metrics["exact/geo_vs_ws"] < 1e-13
        assert r.metrics["exact/weight_sum_err"] < 1e-14  # P(m) sums to 1 over 2^12 masks
        assert r.metrics["exact/arith_vs_ws"] > 1e-3  # the arithmetic mean differs
    assert (tmp_path / "mc_vs_weight_scaling.png").stat().st_size > 10_000
    # the report's k-mask average is the module's Monte-Carlo inference, pass for pass
    run = next(r for r in load_runs(experiment) if "model.width" in r.params)
    _, model, splits = load_trained(run.run_id)
    x = splits.x_test[:64]
    ours = torch.logsumexp(mask_log_probs(model, x, 5, seed=7), dim=0) - math.log(5)
    assert torch.equal(ours, mc_log_probs(model, x, 5))  # the streams mask_log_probs bound
    assert not torch.equal(ours, torch.logsumexp(mask_log_probs(model, x, 5, 8), 0) - math.log(5))
    assert not model.training and not any(m.training for m in model.modules())


def test_dropout_ensemble_formula_is_an_in_sample_identity():
    from regbench.reproductions.dropout_ensemble import measured, moments

    g = torch.Generator().manual_seed(0)
    e = torch.randn(16, 50, 10, generator=g, dtype=torch.float64) + torch.randn(
        1, 50, 10, generator=g, dtype=torch.float64
    )  # 16 correlated members on 50 samples
    v, c = moments(e)
    k = 16
    assert torch.allclose(measured(e)[:, k - 1], v / k + (k - 1) / k * c, rtol=1e-12)
    assert torch.allclose(measured(e)[:, 0], (e[0] ** 2).sum(1))
    # shared component of variance 1 out of 2: rho = C/V near 0.5
    assert abs(c.mean().item() / v.mean().item() - 0.5) < 0.1


def test_dropout_ensemble_tiny_verdicts(experiment, tmp_path):
    from regbench.report.family import holm
    from regbench.reproductions.dropout_ensemble import DropoutEnsemble

    repro = _tiny(DropoutEnsemble(), experiment)
    repro.train("tiny", [0, 1, 2], 1)
    rep = repro.analyse(experiment, "tiny", tmp_path)
    # the members of a dropout net stay highly correlated even after 2 epochs: rho about
    # 0.9 against the folk claim's 0.5 (p ~ 1e-4), REFUTED per claim and family-wise
    fam = {v.claim.key: v for v in holm(rep.claims)}
    rho = fam["rho"]
    assert min(rho.values) > 0.8 and rho.claim.role == "folk"
    assert (rho.status, rho.family_status) == ("REFUTED", "REFUTED")
    assert rho.p_value < rho.holm_level / 10
    assert (tmp_path / "dropout_ensemble.png").stat().st_size > 10_000
    assert rep.markdown == repro.analyse(experiment, "tiny", tmp_path).markdown  # fixed masks

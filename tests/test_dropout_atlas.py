"""The dropout reproductions of the regularization atlas at tiny scale: real Lightning
runs, real MLflow store, their claims' verdicts asserted (tiny cannot resolve the
claims about random quantities: too few seeds, so those are INCONCLUSIVE by design)."""

from __future__ import annotations

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
    assert status["exact"][0] == "SUPPORTED"
    assert status["same_hp"] == ("INCONCLUSIVE", "2 seeds, needs 3")
    assert status["factor"][0] == "INCONCLUSIVE" and status["factor"][1].startswith("2 seeds")
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
    repro.train("tiny", [0, 1], 1)  # resumes: no new child runs, two new parents
    assert len(runs_of(experiment)) == n_runs + 2

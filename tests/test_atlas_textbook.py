"""Atlas part 3 (issue 26): the textbook claims, each reproduction at tiny scale end to end
(real runs through the grid machinery, a real MLflow store, the report), checking that the
claims are computed from the runs as declared; plus the exact checks that tiny scale
already decides."""

from __future__ import annotations

import pytest

from conftest import runs_of


def _reproduce(name: str):
    """Train at tiny scale with the default seeds, analyse; (repro, report, children)."""
    from regbench.report import load_runs
    from regbench.reproductions import get
    from regbench.reproductions.base import build_report

    repro = get(name)
    repro.train("tiny", list(range(repro.default_seeds["tiny"])), 1)
    path = build_report(repro, "tiny")
    assert (path.parent / f"{name}.png").stat().st_size > 10_000
    md = path.read_text()
    assert md.startswith(f"# {name} (tiny scale)") and "## Claims:" in md
    return repro, md, load_runs(repro.experiment_name("tiny"))


def _verdicts(repro):
    from regbench.reproductions.base import check_scale

    check_scale("tiny", repro)
    rep = repro.analyse(repro.experiment_name("tiny"), "tiny", _tmp())
    return {v.claim.key: v for v in rep.claims}


def _tmp():
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp())


def test_dropout_coadaptation_tiny_claims_are_the_paired_ablation_losses():
    from regbench.reproductions.dropout_coadaptation import FRACTIONS, lost

    repro, md, runs = _reproduce("dropout_coadaptation")
    assert sorted((r.p("model.dropout", float), r.seed) for r in runs) == [
        (0.0, 0), (0.0, 1), (0.5, 0), (0.5, 1)
    ]  # fmt: skip
    by = {(r.p("model.dropout", float), r.seed): r for r in runs}
    verdicts = _verdicts(repro)
    for f in FRACTIONS:
        for r in runs:
            assert 0.0 <= r.metrics[f"diag/ablate_acc/{f:g}"] <= 1.0
        want = [lost(by[(0.0, s)], f) - lost(by[(0.5, s)], f) for s in (0, 1)]
        assert list(verdicts[f"ablate_{f:g}"].values) == pytest.approx(want)
        assert verdicts[f"ablate_{f:g}"].claim.role == "folk"
    assert md.count("| removing ") == 3
    assert len(runs_of(repro.experiment_name("tiny"))) == 4 + 1  # children + the grid parent


def test_dropout_sparsity_tiny_claims_read_the_hidden_layer_statistics():
    import math

    repro, md, runs = _reproduce("dropout_sparsity")
    by = {(r.p("model.dropout", float), r.seed): r for r in runs}
    assert sorted(by) == [(0.0, 0), (0.0, 1), (0.5, 0), (0.5, 1)]
    for r in runs:  # one hidden layer of 32 units: a mean, a fraction, nothing else
        assert r.metrics["diag/act_mean/1"] > 0 and 0 <= r.metrics["diag/act_near_zero/1"] <= 1
        assert "diag/act_mean/2" not in r.metrics
    v = _verdicts(repro)
    m = lambda k, a, s: by[(a, s)].metrics[f"diag/{k}/1"]  # noqa: E731
    assert list(v["mean_act"].values) == pytest.approx(
        [math.log(m("act_mean", 0.5, s) / m("act_mean", 0.0, s)) for s in (0, 1)]
    )
    assert list(v["near_zero"].values) == pytest.approx(
        [m("act_near_zero", 0.5, s) - m("act_near_zero", 0.0, s) for s in (0, 1)]
    )
    assert {c.claim.role for c in v.values()} == {"finding"}


def test_epochs_to_best_reads_the_first_epoch_within_one_standard_error():
    from regbench.reproductions.dropout_longer_training import claims, epochs_to_best

    # best 0.30 on 400 samples: s.e. 0.0229, so 0.32 (epoch 3) is already "at the best"
    assert epochs_to_best([0.6, 0.4, 0.32, 0.31, 0.30, 0.35], 400) == 3
    assert epochs_to_best([0.6, 0.4, 0.35, 0.31, 0.30, 0.35], 400) == 4
    assert epochs_to_best([0.2, 0.5], 400) == 1
    c = claims(100)["longer"]  # window [1, 99] epochs
    assert (c.threshold - c.delta, c.threshold + c.delta) == (1.0, 99.0)
    f = claims(100)["factor"]
    assert (f.threshold - f.delta, f.threshold + f.delta, f.kind) == (2.0, 3.0, "position")


def test_dropout_longer_training_tiny_compares_each_arm_at_its_best_rate():
    from regbench.reproductions.dropout_longer_training import epochs_to_best, n_val, val_errors

    repro, md, runs = _reproduce("dropout_longer_training")
    assert len(runs) == 2 * 2 * 2  # dropout x rates x seeds
    curves = {(r.p("model.dropout", float), r.p("optim.lr", float), r.seed): r for r in runs}
    assert all(len(val_errors(r)) == 3 for r in runs)  # one validation error per epoch
    best = {}
    for d in (0.0, 0.5):  # the rate with the lowest mean best validation error
        mean = {
            lr: sum(min(val_errors(curves[(d, lr, s)])) for s in (0, 1)) / 2 for lr in (0.01, 0.03)
        }
        best[d] = min(mean, key=mean.get)
    t = {
        (d, s): epochs_to_best(val_errors(curves[(d, best[d], s)]), n_val(runs[0]))
        for d in (0.0, 0.5)
        for s in (0, 1)
    }
    v = _verdicts(repro)
    assert list(v["longer"].values) == [t[(0.5, s)] - t[(0.0, s)] for s in (0, 1)]
    assert list(v["factor"].values) == pytest.approx([t[(0.5, s)] / t[(0.0, s)] for s in (0, 1)])
    assert n_val(runs[0]) == 60 and "(best)" in md


def test_dropconnect_arms_regularize_the_same_layers_at_the_same_rate():
    from regbench.config import compose
    from regbench.nn import build_model
    from regbench.reg.dropconnect import DropConnectLinear
    from regbench.reg.dropout import BernoulliDropout

    arms = {
        a: compose(["experiment=dropconnect_vs_dropout", f"+experiment/dc_arm={a}"])
        for a in ("none", "dropout", "dropconnect")
    }
    do = build_model(arms["dropout"].model, (40,), 10)
    dc = build_model(arms["dropconnect"].model, (40,), 10)
    assert [m.rate for m in do.modules() if isinstance(m, BernoulliDropout) and m.rate] == [0.5] * 2
    assert [m.rate for m in dc.modules() if isinstance(m, DropConnectLinear)] == [0.5] * 2
    assert not any(isinstance(m, DropConnectLinear) for m in do.modules())
    assert arms["none"].model.dropout == arms["none"].model.dropconnect == 0.0


def test_dropconnect_vs_dropout_tiny_claims_are_relative_and_paired():
    repro, md, runs = _reproduce("dropconnect_vs_dropout")
    err = {(r.p("dc_arm"), r.seed): 1 - r.metrics["test/acc"] for r in runs}
    assert sorted(err) == [(a, s) for a in ("dropconnect", "dropout", "none") for s in (0, 1)]
    v = _verdicts(repro)
    rel = [err[("dropconnect", s)] / err[("dropout", s)] - 1 for s in (0, 1)]
    assert list(v["equivalent"].values) == pytest.approx(rel) == list(v["not_worse"].values)
    assert (v["equivalent"].claim.delta, v["not_worse"].claim.threshold) == (0.14, 0.14)
    assert list(v["dropout_helps"].values) == pytest.approx(
        [err[("none", s)] - err[("dropout", s)] for s in (0, 1)]
    )
    assert "1.62" in md and "| DropConnect 0.5 |" in md


def test_ensemble_vs_dropout_tiny_rebuilds_the_predictors_from_the_store():
    from regbench.reproductions.ensemble_vs_dropout import K, members, replicate_errors

    repro, md, runs = _reproduce("ensemble_vs_dropout")
    plain = {r.seed: r for r in runs if r.p("model.dropout", float) == 0.0}
    drop = {r.seed: r for r in runs if r.p("model.dropout", float) == 0.5}
    assert (sorted(plain), sorted(drop)) == (list(range(2 * K)), [0, 1])
    assert [m.seed for m in members(plain, 1, 2)] == [1, 3, 5, 7, 9]
    errs = replicate_errors(drop[1], members(plain, 1, 2))
    # weight scaling is the run's own test accuracy; an ensemble of one is its first member
    assert errs["ws"][1] == pytest.approx(1 - drop[1].metrics["test/acc"], abs=1e-6)  # float32
    assert errs["ens1"][1] == pytest.approx(1 - plain[1].metrics["test/acc"], abs=1e-6)
    assert errs == replicate_errors(drop[1], members(plain, 1, 2))  # masks from fixed streams
    v = _verdicts(repro)
    assert v["ens5_vs_mc5"].values[1] == pytest.approx(errs["mc5"][1] - errs["ens5"][1])
    assert v["ens2_vs_ws"].values[1] == pytest.approx(errs["ws"][1] - errs["ens2"][1])
    assert "ensemble, k = 5 plain nets" in md


def test_weight_magnitude_importance_tiny_pairs_both_prunings_of_each_net():
    from regbench.config import compose

    l1 = compose(["experiment=weight_magnitude_importance", "+experiment/wmi_arm=l1"])
    l2 = compose(["experiment=weight_magnitude_importance", "+experiment/wmi_arm=l2"])
    assert (l1.reg.l1.strength, l2.reg.l2.strength) == (1e-4, 2.5e-4)
    assert list(l1.diag.pruning.sparsities) == [0.5, 0.8, 0.9]
    repro, md, runs = _reproduce("weight_magnitude_importance")
    by = {(r.p("wmi_arm"), r.seed): r.metrics for r in runs}
    assert sorted(by) == [(a, s) for a in ("l1", "l2", "none") for s in (0, 1)]
    v = _verdicts(repro)
    assert len(v) == 3 * 3 + 1
    for (arm, s), m in by.items():
        assert 0.0 <= m["diag/prune_acc/random/0.9"] <= 1.0
        want = m["diag/prune_acc/magnitude/0.8"] - m["diag/prune_acc/random/0.8"]
        assert v[f"mag_{arm}_0.8"].values[s] == pytest.approx(want)
    drop = {k: m["diag/test_acc"] - m["diag/prune_acc/magnitude/0.9"] for k, m in by.items()}
    assert list(v["l1_vs_l2"].values) == pytest.approx(
        [drop[("l2", s)] - drop[("l1", s)] for s in (0, 1)]
    )


def test_l2_vs_weight_decay_tiny_identities_hold_and_the_grid_maps_decays():
    from regbench.reproductions.l2_vs_weight_decay import (
        best_decays,
        claims,
        coupling_window,
        decay_of,
    )

    t, d = coupling_window([1e-4, 1e-3, 1e-2], [1e-4, 1e-3, 1e-2])
    assert (t - d, t + d) == pytest.approx((1 / 2, 2.0))  # one step at one end: slope 1/2
    repro, md, runs = _reproduce("l2_vs_weight_decay")
    v = _verdicts(repro)
    # exact checks: decided at any scale (the first two are identities, the third can fail)
    assert [v[k].status for k in ("sgd_identity", "adam_identity", "adamw_differs")] == [
        "SUPPORTED"
    ] * 3
    assert max(v["sgd_identity"].values) < -14 and min(v["adamw_differs"].values) > -3
    trained = [r for r in runs if "optim.name" in r.params]
    assert len(trained) == 2 * 2 * 2 * 2  # arms x rates x decays x seeds
    for r in trained:  # AdamW runs at weight_decay = decay / lr: the grid's decays again
        assert decay_of(r) in (1e-4, 1e-2)
    assert {(r.p("optim.name"), r.p("optim.lr", float), decay_of(r)) for r in trained} == {
        (a, lr, dd) for a in ("adam", "adamw") for lr in (1e-3, 1e-2) for dd in (1e-4, 1e-2)
    }
    val = {
        (r.p("optim.name"), r.p("optim.lr", float), decay_of(r), r.seed): 1 - r.metrics["val/acc"]
        for r in trained
    }
    # two decays only: every best decay is at an edge, so coupling is INCONCLUSIVE, saying why
    assert all(b in (1e-4, 1e-2) for b in best_decays(val, [1e-3, 1e-2], [1e-4, 1e-2], "adam", 0))
    assert v["coupling"].status == "INCONCLUSIVE" and "grid's edge" in v["coupling"].note
    assert claims([1e-3, 1e-2], [1e-4, 1e-2])["coupling"].kind == "position"


def test_bn_replaces_dropout_tiny_reads_each_arm_at_its_best_rate():
    from regbench.reproductions.bn_replaces_dropout import best_rate, paired_gain
    from regbench.reproductions.seed_pairs import TEST_SE

    val = {("batch", 0.1): {0: 0.3, 1: 0.4}, ("batch", 0.3): {0: 0.2, 1: 0.3}, ("batch", 0.0): {}}
    assert best_rate(val, "batch", [0.0, 0.1, 0.3]) == 0.3  # 0 is not a dropout rate
    assert abs(TEST_SE - 0.01475) < 1e-5
    repro, md, runs = _reproduce("bn_replaces_dropout")
    test = {}
    for r in runs:
        test.setdefault((r.p("model.norm"), r.p("model.dropout", float)), {})[r.seed] = (
            1 - r.metrics["test/acc"]
        )
    assert sorted(test) == [(n, q) for n in ("batch", "none") for q in (0.0, 0.5)]
    v = _verdicts(repro)
    g = {n: paired_gain(test, n, 0.5) for n in ("none", "batch")}  # tiny: one nonzero rate
    assert list(v["no_gain_with_bn"].values) == pytest.approx(list(g["batch"].values()))
    assert list(v["gain_smaller_with_bn"].values) == pytest.approx(
        [g["none"][s] - g["batch"][s] for s in (0, 1)]
    )
    assert v["no_gain_with_bn"].claim.threshold == TEST_SE and "(best)" in md


def test_bn_init_insensitivity_tiny_invariance_check_and_spreads():
    import statistics

    from regbench.config import compose
    from regbench.reproductions.bn_init_insensitivity import feature_gaps

    over = ["experiment=bn_init_insensitivity", "model.width=16", "model.depth=3"]
    cfg = compose([*over, "model.norm=batch"])
    assert feature_gaps(cfg.model, [0.25, 4.0])[0.25] < 1e-3  # BN: the scale drops out
    cfg.model.norm = "none"  # without BN the features scale by s^depth: the check can fail
    assert feature_gaps(cfg.model, [2.0])[2.0] == pytest.approx(2**3 - 1, rel=1e-9)
    repro, md, runs = _reproduce("bn_init_insensitivity")
    err = {
        (r.p("model.norm"), r.p("model.init_scale", float), r.seed): 1 - r.metrics["test/acc"]
        for r in runs
    }
    assert sorted(err) == [
        (n, s, sd) for n in ("batch", "none") for s in (0.5, 2.0) for sd in (0, 1)
    ]
    v = _verdicts(repro)
    assert v["invariance"].status == "SUPPORTED" and v["invariance"].claim.kind == "exact"
    sd = {n: [statistics.stdev([err[(n, s, k)] for s in (0.5, 2.0)]) for k in (0, 1)]
          for n in ("none", "batch")}  # fmt: skip
    assert list(v["less_spread"].values) == pytest.approx(
        [a - b for a, b in zip(sd["none"], sd["batch"], strict=True)]
    )
    assert v["bn_flat"].claim.threshold == pytest.approx(1.128 * 0.01475, rel=1e-3)


def test_augmentation_sizes_train_for_the_same_number_of_steps():
    import math

    from regbench.config import compose

    for n in (500, 1000, 2000, 4000):
        cfg = compose(["experiment=augmentation_overfitting", f"+experiment/aug_n=n{n}"])
        train = n - round(cfg.data.val_fraction * n)
        assert math.ceil(train / cfg.data.batch_size) * cfg.trainer.max_epochs == 2160
    aug = compose(["experiment=augmentation_overfitting", "+experiment/aug_arm=augment"])
    assert list(aug.reg) == ["augment1d"]


def test_augmentation_overfitting_tiny_gain_and_slope():
    import math

    from regbench.reproductions.seed_pairs import slope

    repro, md, runs = _reproduce("augmentation_overfitting")
    assert {r.p("trainer.max_epochs", int) for r in runs} == {3}  # tiny overrides the sizes'
    err = {(r.p("aug_arm"), r.p("data.n_train", int), r.seed): 1 - r.metrics["test/acc"]
           for r in runs}  # fmt: skip
    assert sorted(err) == [
        (a, n, s) for a in ("augment", "none") for n in (500, 1000) for s in (0, 1)
    ]
    v = _verdicts(repro)
    gains = {s: [err[("none", n, s)] - err[("augment", n, s)] for n in (500, 1000)] for s in (0, 1)}
    assert list(v["err_small"].values) == pytest.approx([gains[s][0] for s in (0, 1)])
    x = [math.log2(500), math.log2(1000)]
    assert list(v["shrinks"].values) == pytest.approx([slope(x, gains[s]) for s in (0, 1)])
    gap = {
        (r.p("aug_arm"), r.p("data.n_train", int), r.seed): r.metrics["diag/gen_gap"] for r in runs
    }
    assert list(v["gap_small"].values) == pytest.approx(
        [gap[("none", 500, s)] - gap[("augment", 500, s)] for s in (0, 1)]
    )

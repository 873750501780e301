"""Atlas part 2 (issue 16): each reproduction at tiny scale, end to end (real Lightning
runs, a real MLflow store, the report), with the verdict each claim must give there."""

from __future__ import annotations

from conftest import runs_of
from regbench.config import compose


def _reproduce(name: str):
    """Train at tiny scale with the default seeds, build the report; (repro, report)."""
    from regbench.reproductions import get
    from regbench.reproductions.base import build_report

    repro = get(name)
    repro.train("tiny", list(range(repro.default_seeds["tiny"])), 1)
    path = build_report(repro, "tiny")
    return repro, path.read_text(), path.parent


def test_dropout_max_norm_arms_follow_srivastava():
    arms = {
        a: compose(["experiment=dropout_max_norm", f"+experiment/dmn_arm={a}"])
        for a in ("plain", "dropout", "dropout_max_norm")
    }
    for cfg in arms.values():
        assert (cfg.model.depth, cfg.model.width, cfg.optim.momentum) == (2, 512, 0.95)
    assert (arms["plain"].model.dropout, arms["plain"].model.input_dropout) == (0.0, 0.0)
    assert (arms["dropout"].model.dropout, arms["dropout"].model.input_dropout) == (0.5, 0.2)
    assert "reg" not in arms["dropout"] or not arms["dropout"].reg
    assert arms["dropout_max_norm"].reg.max_norm.c == 3.0


def test_dropout_max_norm_tiny_end_to_end():
    repro, md, out = _reproduce("dropout_max_norm")
    children = [r for r in runs_of(repro.experiment_name("tiny")) if "seed" in r.data.params]
    assert sorted((r.data.params["dmn_arm"], r.data.params["seed"]) for r in children) == [
        (a, s) for a in ("dropout", "dropout_max_norm", "plain") for s in ("0", "1")
    ]
    # two seeds cannot judge a claim that needs three: both INCONCLUSIVE, saying why
    assert md.count("**INCONCLUSIVE**: 2 seeds, needs 3") == 2
    assert "## Claims: 0 SUPPORTED, 0 REFUTED, 2 INCONCLUSIVE" in md
    assert (out / "dropout_max_norm.png").stat().st_size > 10_000


def test_bn_learning_rate_tiny_end_to_end():
    from regbench.reproductions.bn_learning_rate import RATES

    assert all(abs(b / a - 3) < 1e-3 for a, b in zip(RATES, RATES[1:], strict=False))
    cfg = compose(["experiment=bn_learning_rate", "model.norm=batch"])
    assert (cfg.model.depth, cfg.model.width, cfg.model.act) == (3, 100, "sigmoid")
    assert (cfg.optim.momentum, cfg.data.batch_size, cfg.trainer.max_epochs) == (0.0, 60, 20)
    repro, md, out = _reproduce("bn_learning_rate")
    children = [r for r in runs_of(repro.experiment_name("tiny")) if "seed" in r.data.params]
    assert len(children) == 2 * 2 * 2  # arms x rates x seeds
    assert md.count("**INCONCLUSIVE**: 2 seeds, needs 3") == 2
    assert "## Claims: 0 SUPPORTED, 0 REFUTED, 2 INCONCLUSIVE" in md
    assert (out / "bn_learning_rate.png").stat().st_size > 10_000


def test_gn_vs_bn_batch_scales_the_rate_and_runs_tiny():
    for b in (2, 4, 8, 32):
        cfg = compose(["experiment=gn_vs_bn_batch", f"+experiment/gnbn_batch=b{b}"])
        assert cfg.data.batch_size == b and abs(cfg.optim.lr - 0.1 * b / 64) < 1e-12
        assert (cfg.model.width, cfg.model.norm_groups, cfg.trainer.max_epochs) == (128, 32, 10)
    repro, md, out = _reproduce("gn_vs_bn_batch")
    children = [r for r in runs_of(repro.experiment_name("tiny")) if "seed" in r.data.params]
    assert sorted(
        {(r.data.params["model.norm"], r.data.params["data.batch_size"]) for r in children}
    ) == [("batch", "2"), ("batch", "32"), ("group", "2"), ("group", "32")]
    assert md.count("**INCONCLUSIVE**: 2 seeds, needs 3") == 3
    assert (out / "gn_vs_bn_batch.png").stat().st_size > 10_000


def test_early_stopping_width_tiny_end_to_end():
    from regbench.reproductions.early_stopping_width import slope

    assert abs(slope([0.0, 1.0, 2.0], [0.3, 0.2, 0.1]) + 0.1) < 1e-12
    early = compose(["experiment=early_stopping_width", "+experiment/esw_arm=early"])
    assert (early.model.depth, early.data.label_noise, early.trainer.max_epochs) == (1, 0.15, 500)
    assert early.reg.early_stopping.patience == 20
    repro, md, out = _reproduce("early_stopping_width")
    children = [r for r in runs_of(repro.experiment_name("tiny")) if "seed" in r.data.params]
    assert len(children) == 2 * 2 * 2  # arms x widths x seeds
    es = [r for r in children if r.data.params["esw_arm"] == "early"]
    assert all("diag/best_epoch" in r.data.metrics for r in es)
    assert md.count("**INCONCLUSIVE**: 2 seeds, needs 3") == 3
    assert (out / "early_stopping_width.png").stat().st_size > 10_000


def test_stochastic_depth_arms_and_tiny_end_to_end():
    arms = {
        a: compose(["experiment=stochastic_depth", f"+experiment/sd_arm={a}"])
        for a in ("none", "uniform", "linear")
    }
    assert all(c.model.depth == 24 and c.model.name == "resmlp" for c in arms.values())
    assert arms["none"].model.survival_last == 1.0
    assert arms["linear"].model.drop_path_mode == arms["uniform"].model.drop_path_mode == "batch"
    assert arms["uniform"].model.survival_rule == "uniform"
    repro, md, out = _reproduce("stochastic_depth")
    runs = [r for r in runs_of(repro.experiment_name("tiny")) if "seed" in r.data.params]
    trained = [r for r in runs if "sd_arm" in r.data.params]
    timing = [r for r in runs if r.data.params.get("kind") == "timing"]
    assert len(trained) == 3 * 2 and len(timing) == 2
    # one deletion accuracy per block (tiny: 6 blocks), each a valid accuracy
    dels = [v for k, v in trained[0].data.metrics.items() if k.startswith("diag/delete_acc/")]
    assert len(dels) == 6 and all(0.0 <= v <= 1.0 for v in dels)
    t = timing[0].data.metrics
    assert 0.5 < t["time/expected_fraction"] < 1.0 and t["time/none_s"] > 0
    assert md.count("**INCONCLUSIVE**: 2 seeds, needs 3") == 6
    assert (out / "stochastic_depth.png").stat().st_size > 10_000


def test_cnn1d_matches_the_notebook_architecture():
    import torch

    from regbench.nn import build_model

    cfg = compose(["experiment=cnn_double_descent", "model.width=18"])
    assert (cfg.data.n_train, cfg.data.n_test, cfg.data.val_fraction) == (4000, 12000, 0.0)
    assert (cfg.optim.lr, cfg.optim.momentum, cfg.data.batch_size) == (0.01, 0.9, 100)
    model = build_model(cfg.model, (40,), 10)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv1d)]
    assert [
        (c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0], c.padding[0]) for c in convs
    ] == [(1, 18, 5, 2, 1), (18, 18, 3, 2, 1), (18, 18, 3, 2, 1)]
    assert model.head.in_features == 18 * 5  # 40 -> 19 -> 10 -> 5
    assert model(torch.randn(3, 40)).shape == (3, 10)


def test_cnn_double_descent_tiny_end_to_end():
    repro, md, out = _reproduce("cnn_double_descent")
    children = [r for r in runs_of(repro.experiment_name("tiny")) if "seed" in r.data.params]
    assert sorted(int(r.data.params["model.width"]) for r in children) == [10, 10, 18, 18, 60, 60]
    assert md.count("**INCONCLUSIVE**: 2 seeds, needs 3") == 2
    assert (out / "cnn_double_descent.png").stat().st_size > 10_000

"""Reproductions: configs (paper scale composes and trains one batch), the batched
teacher-student against its closed form, and tiny end-to-end grids -> reports."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from regbench.config import compose

PLACEMENTS = ["none", "before_bn", "head", "uout"]


def _one_batch(cfg) -> float:
    """One training step of the composed model on random CIFAR-shaped tensors."""
    from regbench.module import RegModule
    from regbench.nn import build_model
    from regbench.reg import build_regularizers

    torch.manual_seed(0)
    model = build_model(cfg.model, (3, 32, 32), 10)
    module = RegModule(
        model, cfg.optim, cfg.scheduler, cfg.trainer.max_epochs, build_regularizers(cfg)
    )
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    loss = module.training_step((x, y), 0)
    loss.backward()
    return float(loss)


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_variance_shift_paper_config_composes_and_trains_one_batch(placement):
    cfg = compose(
        ["experiment=variance_shift_paper", f"+experiment/vs_placement={placement}", "vs_rate=0.3"]
    )
    assert cfg.data.name == "cifar10" and cfg.model.block[:3] == ["norm", "act", "conv"]
    assert "crop_flip" in cfg.reg and cfg.optim.name == "sgd" and cfg.optim.lr == 0.1
    drops = {"none": (0.0, 0.0), "before_bn": (0.3, 0.0), "head": (0.0, 0.3), "uout": (0.3, 0.0)}
    assert (cfg.model.dropout, cfg.model.head_dropout) == drops[placement]
    assert ("dropout" in cfg.model.block) == (placement in ("before_bn", "uout"))
    assert np.isfinite(_one_batch(cfg))


@pytest.mark.parametrize("name", ["model_double_descent_paper", "epoch_double_descent_paper"])
def test_double_descent_paper_configs_compose_and_train_one_batch(name):
    cfg = compose([f"experiment={name}", "model.width=4"])
    assert cfg.model.name == "resnet18" and cfg.optim.name == "adam" and cfg.optim.lr == 1e-4
    assert cfg.data.label_noise == (0.15 if name.startswith("model") else 0.2)
    assert np.isfinite(_one_batch(cfg))


def test_cpu_configs_match_the_published_setups():
    vs = compose(["experiment=variance_shift", "+experiment/vs_placement=before_bn"])
    assert list(vs.model.block) == ["linear", "dropout", "norm", "act"]
    assert (vs.model.depth, vs.model.width, vs.model.dropout) == (3, 128, 0.5)
    assert (vs.optim.lr, vs.optim.momentum, vs.optim.weight_decay) == (0.1, 0.9, 5e-4)
    assert (vs.data.batch_size, vs.trainer.max_epochs, vs.scheduler.name) == (64, 30, "cosine")


def test_teacher_student_module_matches_closed_form_gradient_descent():
    from regbench.reproductions.teacher_student import log_steps, make_draws, train

    data = make_draws(draws=3, n=30, d=10, fast_dims=6, kappa=100.0, noise=0.1, seed=1)
    records = dict(train(data, fast_dims=6, fast_lr_scale=0.1, steps=50, n_log=6))
    assert sorted(records) == log_steps(50, 6) and max(records) == 50
    # the same GD in numpy, draw by draw
    for b in range(3):
        x, y = data["x"][b].numpy(), data["y"][b].numpy()
        cov, xty = x.T @ x / 30, x.T @ y / 30
        step = np.full(10, 1 / np.linalg.eigvalsh(cov)[-1])
        step[:6] *= 0.1
        w = np.zeros(10)
        for t in range(1, 51):
            w -= step * (cov @ w - xty)
            if t in records:
                err = np.sum((data["w_star"][b].numpy() - data["f"].numpy() * w) ** 2)
                assert records[t][f"draw/{b}/test_err"] == pytest.approx(err, rel=1e-9)
                assert records[t][f"draw/{b}/train_mse"] == pytest.approx(
                    np.mean((x @ w - y) ** 2), rel=1e-9
                )

"""MLP and residual MLP builders: order spec, per-block rates, stochastic depth."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from regbench.config import compose
from regbench.errors import ConfigError
from regbench.nn import build_model
from regbench.nn.mlp import ResidualBlock
from regbench.reg.depth import DropPath


def build(*overrides: str) -> nn.Module:
    cfg = compose(list(overrides))
    return build_model(cfg.model, (40,), 10)


def test_mlp_order_spec_puts_dropout_directly_before_batch_norm():
    m = build(
        "model.depth=3",
        "model.block=[linear,dropout,norm,act]",
        "model.norm=batch",
        "model.dropout=0.5",
    )
    names = [type(layer).__name__ for layer in m.blocks[0]]
    assert names == ["Linear", "BernoulliDropout", "BatchNorm1d", "ReLU"]
    assert m(torch.randn(5, 40)).shape == (5, 10)


def test_resmlp_survival_follows_linear_rule_and_branches_are_residual():
    m = build("model=resmlp", "model.depth=4", "model.width=16", "model.survival_last=0.5")
    blocks = [b for b in m.blocks if isinstance(b, ResidualBlock)]
    assert len(blocks) == 4
    got = [b.drop_path.survival_prob for b in blocks]
    assert got == pytest.approx([1 - (i / 4) * 0.5 for i in range(1, 5)])
    # eval: x + p_l * branch(x)
    m.eval()
    x = torch.randn(6, 16)
    b = blocks[3]
    assert torch.allclose(b(x), x + 0.5 * b.branch(x), atol=1e-6)
    # training: per sample, either x (dropped) or x + branch(x) (kept, not rescaled)
    b.train()
    torch.manual_seed(0)
    xs = torch.randn(2000, 16)
    out = b(xs)
    kept = ~torch.isclose(out, xs).all(1)
    assert kept.float().mean().item() == pytest.approx(0.5, abs=0.04)
    assert m(torch.randn(3, 40)).shape == (3, 10)


def test_resmlp_without_stochastic_depth_has_no_drop_path():
    m = build("model=resmlp", "model.depth=2", "model.survival_last=1.0")
    assert not any(isinstance(mod, DropPath) for mod in m.modules())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=resmlp", "model.survival_last=0"], "model.survival_last=0 is out of range"),
        (["model=resmlp", "model.survival_last=1.2"], "model.survival_last=1.2 is out of range"),
        (["model=resmlp", "model.final=[banana]"], "model.final='banana'"),
        (["model.block=[norm,act]"], "must contain 'linear'"),
    ],
)
def test_bad_model_settings_name_the_key(overrides, message):
    with pytest.raises(ConfigError) as e:
        build(*overrides)
    assert message in str(e.value)


def test_resmlp_trains_end_to_end(tiny, experiment):
    from regbench.train import run

    out = run(
        tiny(
            "model=resmlp",
            "model.depth=3",
            "model.width=32",
            "trainer.max_epochs=3",
            experiment_name=experiment,
        )
    )
    assert out["test/acc"] > 0.2  # 10 classes: chance is 0.1

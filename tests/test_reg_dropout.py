"""The dropout family: defining properties, per-layer rates, test-time options."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from regbench.config import compose
from regbench.errors import ConfigError
from regbench.nn import build_model
from regbench.reg.dropout import (
    BernoulliDropout,
    GaussianDropout,
    Uout,
    VanillaDropout,
    bernoulli_dropout,
    gaussian_dropout,
    uout,
    vanilla_dropout,
)
from regbench.reg.inference import inference_from, mc_log_probs, stochastic_layers_on

N = 400_000


def test_inverted_dropout_preserves_the_mean_and_drops_the_rate():
    torch.manual_seed(0)
    x = torch.rand(N) + 0.5  # mean 1.0, all > 0
    out = bernoulli_dropout(x, 0.3, training=True)
    assert (out == 0).float().mean().item() == pytest.approx(0.3, abs=0.005)  # rate = DROP prob.
    assert out.mean().item() == pytest.approx(x.mean().item(), rel=0.01)
    kept = out != 0
    assert torch.allclose(out[kept], x[kept] / 0.7)
    assert bernoulli_dropout(x, 0.3, training=False) is x


def test_vanilla_and_inverted_dropout_agree_in_expectation():
    # Vanilla: E[train output] = (1 - rate) x = its test output. Inverted: E = x = its test
    # output. So both nets' test outputs are their training expectations, and the two
    # differ exactly by the constant retain factor the next layer's weights absorb.
    torch.manual_seed(1)
    x = torch.randn(64).abs() + 0.1
    rate = 0.4
    samples = 20_000
    van = torch.stack([vanilla_dropout(x, rate, True) for _ in range(samples)]).mean(0)
    inv = torch.stack([bernoulli_dropout(x, rate, True) for _ in range(samples)]).mean(0)
    assert torch.allclose(van, vanilla_dropout(x, rate, False), rtol=0.05)
    assert torch.allclose(inv, bernoulli_dropout(x, rate, False), rtol=0.05)
    assert torch.allclose(van, (1 - rate) * inv, rtol=0.05)


def test_uout_variance_ratio_is_3_over_3_plus_b2_on_zero_mean_input():
    # Li et al. 2019 (arXiv 1801.05134): Var(x) / Var(x + x r), r ~ U(-b, b) = 3 / (3 + b^2).
    torch.manual_seed(2)
    x = torch.randn(N)
    for b in (0.1, 0.5, 0.9):
        ratio = x.var() / uout(x, b, training=True).var()
        assert ratio.item() == pytest.approx(3 / (3 + b * b), rel=0.01), b
        # Uout keeps the mean: E[x + x r] = x.
        assert uout(x, b, training=True).mean().item() == pytest.approx(0.0, abs=0.01)


def test_gaussian_dropout_matches_inverted_bernoulli_mean_and_variance():
    torch.manual_seed(3)
    x = torch.full((N,), 2.0)
    g, b = gaussian_dropout(x, 0.5, True), bernoulli_dropout(x, 0.5, True)
    assert g.mean().item() == pytest.approx(2.0, rel=0.01)
    assert g.var().item() == pytest.approx(b.var().item(), rel=0.02)  # both 4 * rate/(1-rate)
    assert gaussian_dropout(x, 0.5, False) is x


@pytest.mark.parametrize("cls", [BernoulliDropout, VanillaDropout, GaussianDropout, Uout])
def test_modules_are_random_in_training_and_fixed_at_eval(cls):
    m = cls(0.5)
    x = torch.randn(100, 8)
    assert "rate=0.5" in repr(m)
    assert not torch.equal(m(x), m(x))
    m.eval()
    assert torch.equal(m(x), m(x))


def mlp(*overrides: str) -> nn.Module:
    cfg = compose(["model.depth=3", "model.width=16", *overrides])
    return build_model(cfg.model, (40,), 10)


def rates_of(model: nn.Module) -> list[float]:
    return [m.rate for m in model.blocks.modules() if isinstance(m, BernoulliDropout)]


def test_per_block_rates_and_input_dropout():
    m = mlp("model.dropout=[0.1,0.0,0.3]", "model.input_dropout=0.2", "model.head_dropout=0.5")
    # A zero rate is an empty slot (Identity), the others carry their own rate.
    assert rates_of(m) == [0.1, 0.3]
    assert isinstance(m.blocks[1][3], nn.Identity)
    assert m.input_drop.rate == 0.2 and m.head_drop.rate == 0.5
    assert rates_of(mlp("model.dropout=0.25")) == [0.25, 0.25, 0.25]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.dropout=[0.1,0.2]", "model.dropout=[0.1, 0.2] has 2 rates for 3 blocks"),
        ("model.dropout=[0.1,1.0,0.2]", "model.dropout[1]=1.0 is out of range; allowed: [0, 1)"),
        ("model.input_dropout=-0.5", "model.input_dropout=-0.5 is out of range"),
        ("model.head_dropout=1.0", "model.head_dropout=1.0 is out of range"),
        ("model.dropout_kind=banana", "model.dropout_kind='banana' is not a known dropout kind"),
        ("model.test_mode=banana", "model.test_mode='banana' is not valid"),
        ("model.mc_samples=0", "model.mc_samples=0 is not valid"),
    ],
)
def test_bad_rates_fail_naming_the_key(override, message):
    with pytest.raises(ConfigError) as e:
        cfg = compose(["model.depth=3", override])
        build_model(cfg.model, (40,), 10)
        inference_from(cfg.model)
    assert message in str(e.value)


def test_mc_inference_switches_only_stochastic_layers_and_averages():
    torch.manual_seed(4)
    m = mlp("model.norm=batch", "model.dropout=0.5", "model.block=[linear,norm,act,dropout]")
    m.eval()
    x = torch.randn(32, 40)
    with stochastic_layers_on(m):
        bn = [mod for mod in m.modules() if isinstance(mod, nn.BatchNorm1d)]
        drops = [mod for mod in m.modules() if isinstance(mod, BernoulliDropout)]
        assert all(not b.training for b in bn) and all(d.training for d in drops)
        assert not torch.equal(m(x), m(x))
    assert not any(mod.training for mod in m.modules())  # restored
    # log of the mean of the passes' probabilities, normalised per row
    torch.manual_seed(5)
    lp = mc_log_probs(m, x, 8)
    torch.manual_seed(5)
    with stochastic_layers_on(m):
        probs = torch.stack([m(x).softmax(1) for _ in range(8)]).mean(0)
    assert torch.allclose(lp.exp(), probs, atol=1e-6)
    assert torch.allclose(lp.exp().sum(1), torch.ones(32), atol=1e-5)


def test_mc_average_of_vanilla_dropout_approaches_weight_scaling():
    # For one linear layer after vanilla dropout the output is linear in the mask, so the
    # mean over many passes tends to the deterministic (weight-scaled) output.
    torch.manual_seed(6)
    m = nn.Sequential(VanillaDropout(0.5), nn.Linear(20, 3)).eval()
    x = torch.randn(4, 20)
    with stochastic_layers_on(m), torch.no_grad():
        mean = torch.stack([m(x) for _ in range(20_000)]).mean(0)
    assert torch.allclose(mean, m(x), atol=0.03)


def test_test_mode_mc_trains_and_tests_end_to_end(tiny, experiment):
    from regbench.train import run

    cfg = tiny(
        "model.dropout=0.3",
        "model.test_mode=mc",
        "model.mc_samples=4",
        "trainer.max_epochs=1",
        experiment_name=experiment,
    )
    out = run(cfg)
    assert 0.0 < out["test/acc"] <= 1.0
    again = run(cfg)
    assert again["test/acc"] == out["test/acc"] and again["test/loss"] == out["test/loss"]

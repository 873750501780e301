"""Loss penalties (L1, L2, elastic net) and decoupled weight decay."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import runs_of
from regbench.config import compose
from regbench.data import build_data
from regbench.diagnostics import weight_stats
from regbench.errors import ConfigError
from regbench.nn import build_model
from regbench.optim import build_optimizer
from regbench.reg import build_regularizers


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2))


def penalty(name: str, *overrides: str):
    """The penalty as a function of the model: weight penalties ignore the logits,
    targets and step of the hook contract (regbench.reg.bundle.Penalty)."""
    cfg = compose([f"reg=[{name}]", *overrides])
    hook = build_regularizers(cfg).penalties[name]
    return lambda model: hook(model, None, None, 0)


def test_penalty_values_follow_their_formulas():
    m = small_model()
    w = [m[0].weight, m[3].weight]
    every = list(m.parameters())
    l1 = sum(p.abs().sum() for p in w)
    l2 = sum(p.square().sum() for p in w)
    assert penalty("l1", "reg.l1.strength=0.01")(m).item() == pytest.approx(0.01 * l1.item())
    assert penalty("l2", "reg.l2.strength=0.01")(m).item() == pytest.approx(0.01 * l2.item())
    en = penalty("elastic_net", "reg.elastic_net.strength=0.1", "reg.elastic_net.l1_ratio=0.3")
    assert en(m).item() == pytest.approx(0.1 * (0.3 * l1.item() + 0.7 * l2.item()), rel=1e-6)
    # params=all adds biases and the BN affine parameters
    all_l1 = sum(p.abs().sum() for p in every).item()
    got = penalty("l1", "reg.l1.strength=1.0", "reg.l1.params=all")(m).item()
    assert got == pytest.approx(all_l1, rel=1e-6) and got > l1.item()


def test_l2_gradient_is_2_lambda_w():
    m = small_model()
    penalty("l2", "reg.l2.strength=0.5")(m).backward()
    assert torch.allclose(m[0].weight.grad, m[0].weight.detach())  # 2 * 0.5 * w
    assert m[0].bias.grad is None  # biases are not penalised by default


def train_with(pen, steps: int = 300) -> nn.Module:
    """Full-batch SGD on 1000 MNIST-1D samples with a fixed seed."""
    cfg = compose(["data.n_train=1000", "model.depth=1", "model.width=64"])
    s = build_data(cfg.data, 0)
    torch.manual_seed(0)
    m = build_model(cfg.model, s.input_shape, s.num_classes)
    opt = torch.optim.SGD(m.parameters(), lr=0.05)
    for _ in range(steps):
        loss = F.cross_entropy(m(s.x_train), s.y_train) + pen(m)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return m


def test_l1_drives_more_weights_near_zero_than_l2_at_equal_strength():
    l1 = weight_stats(train_with(penalty("l1", "reg.l1.strength=3e-3")))["sparsity"]
    l2 = weight_stats(train_with(penalty("l2", "reg.l2.strength=3e-3")))["sparsity"]
    none = weight_stats(train_with(lambda m: torch.zeros(())))["sparsity"]
    # measured: l1 0.12, l2 0.003, none 0.004 (L2 shrinks proportionally: no sparsity)
    assert l1 > 0.08 and l1 > 10 * l2 and l2 < 2 * none + 0.01, (l1, l2, none)


def test_penalty_logged_as_train_reg_name_and_total_is_the_sum(tiny, experiment):
    from regbench.train import run

    out = run(
        tiny(
            "reg=[l1,l2]",
            "reg.l1.strength=1e-3",
            "reg.l2.strength=1e-3",
            experiment_name=experiment,
        )
    )
    assert out["train/reg/l1"] > 0 and out["train/reg/l2"] > 0
    total = out["train/loss_data"] + out["train/reg/l1"] + out["train/reg/l2"]
    assert out["train/loss"] == pytest.approx(total, rel=1e-5)
    [r] = runs_of(experiment)
    assert r.data.params["reg.l1.strength"] == "0.001" and r.data.params["reg.l2.kind"] == "l2"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["reg=[l1]", "reg.l1.strength=-1"],
            "reg.l1.strength=-1 is out of range; allowed: [0, inf)",
        ),
        (
            ["reg=[l2]", "reg.l2.params=biases"],
            "reg.l2.params='biases' is not valid; choose one of: all, weights",
        ),
        (
            ["reg=[elastic_net]", "reg.elastic_net.l1_ratio=2"],
            "reg.elastic_net.l1_ratio=2 is out of range",
        ),
        (
            ["reg=[l1]", "reg.l1.kind=banana"],
            "reg.l1.kind='banana' is not a known regularizer kind",
        ),
    ],
)
def test_bad_penalty_settings_name_the_key(overrides, message):
    with pytest.raises(ConfigError) as e:
        build_regularizers(compose(overrides))
    assert message in str(e.value)


def test_decoupled_weight_decay_excludes_biases_and_norm_parameters():
    m = small_model()
    opt = build_optimizer(
        compose(["optim=adamw", "optim.lr=0.1", "optim.weight_decay=0.5"]).optim, m
    )
    decay, no_decay = opt.param_groups
    assert {id(p) for p in decay["params"]} == {id(m[0].weight), id(m[3].weight)}
    assert {id(p) for p in no_decay["params"]} == {
        id(m[0].bias),
        id(m[1].weight),
        id(m[1].bias),
        id(m[3].bias),
    }
    assert decay["weight_decay"] == 0.5 and no_decay["weight_decay"] == 0.0
    # With zero gradients AdamW only decays: w <- w (1 - lr * wd); the rest stays put.
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    for p in m.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for n, p in m.named_parameters():
        expected = before[n] * (1 - 0.05) if p.ndim > 1 else before[n]
        assert torch.allclose(p.detach(), expected), n
    # and without the exclusion every parameter decays
    cfg = compose(["optim=adamw", "optim.no_decay_bias_norm=false"]).optim
    [group] = build_optimizer(cfg, m).param_groups
    assert len(group["params"]) == len(list(m.parameters())) and group["weight_decay"] == 0.01

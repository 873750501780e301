"""Normalization options of the order spec (nn/layers.py): batch, layer, group, instance."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import runs_of
from regbench.config import compose
from regbench.errors import ConfigError
from regbench.nn import build_model


def mlp(*overrides: str) -> nn.Module:
    cfg = compose(["model.depth=2", "model.width=16", *overrides])
    return build_model(cfg.model, (40,), 10)


def norms_of(model: nn.Module, cls) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, cls)]


def test_batch_norm_settings_and_running_statistics_in_eval():
    m = mlp(
        "model.norm=batch",
        "model.norm_momentum=0.3",
        "model.norm_eps=1e-3",
        "model.norm_affine=false",
    )
    bn = norms_of(m, nn.BatchNorm1d)
    assert len(bn) == 2 and bn[0].momentum == 0.3 and bn[0].eps == 1e-3 and not bn[0].affine
    torch.manual_seed(0)
    layer = nn.BatchNorm1d(4, momentum=None)  # cumulative average: exact running stats
    data = torch.randn(5, 64, 4) * 3 + 2
    for x in data:
        layer(x)
    layer.eval()
    x = torch.randn(8, 4) * 10 - 5
    # eval: normalised with the running statistics, not the batch's own
    expected = (x - layer.running_mean) / torch.sqrt(layer.running_var + layer.eps)
    assert torch.allclose(layer(x), expected, atol=1e-5)
    assert torch.allclose(layer.running_mean, data.mean((0, 1)), atol=0.3)
    # and not normalised per batch: the eval output keeps the batch's offset
    assert layer(x).mean(0).abs().min() > 0.5
    # train: batch statistics, zero mean per feature
    layer.train()
    assert torch.allclose(layer(x).mean(0), torch.zeros(4), atol=1e-5)


def test_layer_and_group_norm_normalise_each_sample():
    torch.manual_seed(1)
    x = torch.randn(3, 16) * 4 + 7
    ln = norms_of(mlp("model.norm=layer", "model.norm_affine=false"), nn.LayerNorm)[0]
    out = ln(x)
    assert torch.allclose(out.mean(1), torch.zeros(3), atol=1e-5)
    assert torch.allclose(out.var(1, unbiased=False), torch.ones(3), atol=1e-3)
    gn = norms_of(mlp("model.norm=group", "model.norm_groups=4"), nn.GroupNorm)[0]
    assert gn.num_groups == 4
    g = gn(x).view(3, 4, 4)  # (B, groups, channels per group)
    assert torch.allclose(g.mean(2), torch.zeros(3, 4), atol=1e-5)
    # no running statistics: same output in train and eval mode
    gn.eval()
    assert torch.allclose(gn(x).view(3, 4, 4), g)
    assert norms_of(mlp("model.norm=none"), nn.BatchNorm1d) == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["model.norm=group", "model.norm_groups=5"],
            "model.norm_groups=5 does not divide the layer width 32",
        ),
        (["model.norm=group", "model.norm_groups=0"], "model.norm_groups=0 is not valid"),
        (["model.norm=instance"], "model.norm='instance' needs spatial features"),
        (
            ["model.norm=batch", "model.norm_momentum=1.5"],
            "model.norm_momentum=1.5 is out of range",
        ),
    ],
)
def test_bad_norm_settings_fail_before_training(tiny, experiment, overrides, message):
    from regbench.train import run

    with pytest.raises(ConfigError) as e:
        run(tiny(*overrides, experiment_name=experiment))
    assert message in str(e.value)
    assert runs_of(experiment) == []

"""ResNet variants (regbench.nn.resnet): parameter counts, shapes, order spec, depth rule."""

from __future__ import annotations

import functools

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from regbench.config import compose
from regbench.errors import ConfigError
from regbench.nn import build_model
from regbench.nn.resnet_blocks import PadShortcut
from regbench.reg.depth import DropPath, linear_decay_survival


@functools.cache
def _base(model: str):
    return compose([f"model={model}"]).model


def model_cfg(model: str, **keys):
    cfg = OmegaConf.create(OmegaConf.to_container(_base(model)))
    for k, v in keys.items():
        cfg[k] = v
    return cfg


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# --- 1. published parameter counts (CIFAR-10: 3x32x32 inputs, 10 classes) -------------
@pytest.mark.parametrize(
    ("model", "keys", "published"),
    [
        ("resnet20", {}, 0.27e6),  # He et al. 2016, Table 6 (option A shortcuts)
        ("resnet56", {}, 0.85e6),
        ("resnet110", {}, 1.7e6),
        ("resnet18", {"width": 64}, 11.2e6),  # the usual ResNet-18, 10 classes
        ("wrn", {"depth": 28, "widen": 10}, 36.5e6),  # Zagoruyko & Komodakis, Table 1
        ("wrn", {"depth": 40, "widen": 4}, 8.9e6),
    ],
)
def test_parameter_counts_match_published_within_2_percent(model, keys, published):
    net = build_model(model_cfg(model, **keys), (3, 32, 32), 10)
    assert abs(n_params(net) - published) / published < 0.02, n_params(net)


def test_published_cifar_counts_need_padding_shortcuts():
    pad = n_params(build_model(model_cfg("resnet20", shortcut="pad"), (3, 32, 32), 10))
    conv = n_params(build_model(model_cfg("resnet20", shortcut="conv"), (3, 32, 32), 10))
    assert pad == 269_722  # 0.27M
    # Two 1x1 projections (16->32, 32->64) and their BatchNorms: 512 + 64 + 2048 + 128.
    assert conv - pad == 16 * 32 + 2 * 32 + 32 * 64 + 2 * 64


def test_resnet18_width_multiplier_sets_stage_widths():
    net = build_model(model_cfg("resnet18", width=5), (3, 32, 32), 10)
    convs = [m for m in net.stages.modules() if isinstance(m, nn.Conv2d)]
    assert sorted({m.out_channels for m in convs}) == [5, 10, 20, 40]
    assert net.head.in_features == 40


# --- 2. forward/backward shapes: every variant, 1-D and 2-D, every norm -----------------
SMALL = {
    "resnet20": {"depth": 8, "width": 8},  # post-activation, padding shortcuts
    "preresnet20": {"depth": 8, "width": 8},  # pre-activation
    "resnet18": {"width": 4},  # post-activation, 1x1 conv shortcuts
    "preresnet18": {"width": 4},
    "wrn": {"depth": 10, "widen": 1, "width": 8, "dropout": 0.3},
}
INPUTS = {"1d-mnist1d": (40,), "1d-channels": (2, 24), "2d": (3, 16, 16)}


@pytest.mark.parametrize("norm", ["batch", "layer", "group", "instance", "none"])
@pytest.mark.parametrize("shape", list(INPUTS.values()), ids=list(INPUTS))
@pytest.mark.parametrize("model", list(SMALL))
def test_forward_backward_shapes(model, shape, norm):
    torch.manual_seed(0)
    cfg = model_cfg(model, norm=norm, norm_groups=4, head_dropout=0.2, **SMALL[model])
    net = build_model(cfg, shape, 7)
    conv = nn.Conv1d if len(shape) < 3 else nn.Conv2d
    assert any(isinstance(m, conv) for m in net.modules())
    x = torch.randn(6, *shape, requires_grad=True)
    out = net(x)
    assert out.shape == (6, 7)
    out.square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert x.grad.shape == x.shape and x.grad.abs().sum() > 0
    net.eval()
    assert net(x[:2]).shape == (2, 7)
    # conv bias only where no norm absorbs it (model.bias=auto)
    convs = [m for m in net.modules() if isinstance(m, conv)]
    assert all((m.bias is not None) == (norm == "none") for m in convs)


@pytest.mark.parametrize(("bias", "norm", "want"), [(True, "batch", True), (False, "none", False)])
def test_explicit_conv_bias(bias, norm, want):
    cfg = model_cfg("resnet20", depth=8, width=4, bias=bias, norm=norm, dims=1)
    net = build_model(cfg, (40,), 3)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv1d)]
    assert len(convs) == 7 and all((m.bias is not None) == want for m in convs)


def test_pre_and_post_activation_layouts():
    post = build_model(model_cfg("resnet18", width=4), (3, 8, 8), 10)
    pre = build_model(model_cfg("preresnet18", width=4), (3, 8, 8), 10)
    b_post, b_pre = post.blocks()[0], pre.blocks()[0]
    kinds = lambda seq: [type(m).__name__ for m in seq]  # noqa: E731
    assert kinds(b_post.branch) == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d"]
    assert kinds(b_post.after_add) == ["ReLU"]
    assert kinds(b_pre.branch) == ["BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d", "ReLU", "Conv2d"]
    assert isinstance(b_pre.after_add, nn.Identity)
    assert kinds(pre.final) == ["BatchNorm2d", "ReLU"] and isinstance(post.final, nn.Identity)
    assert kinds(pre.stem) == ["Conv2d"] and kinds(post.stem) == ["Conv2d", "BatchNorm2d", "ReLU"]


def test_block_order_from_config_places_dropout_and_norm():
    cfg = model_cfg(
        "resnet20",
        depth=8,
        width=4,
        dropout=0.4,
        block=["conv", "norm", "act", "dropout", "conv", "norm"],
    )
    net = build_model(cfg, (40,), 10)
    for block in net.blocks():
        assert [type(m).__name__ for m in block.branch] == [
            "Conv1d",
            "BatchNorm1d",
            "ReLU",
            "BernoulliDropout",
            "Conv1d",
            "BatchNorm1d",
        ]
        assert block.branch[3].rate == 0.4
    wrn = build_model(model_cfg("wrn", depth=10, widen=2, width=4, dropout=0.3), (3, 8, 8), 10)
    drops = [m for m in wrn.modules() if type(m).__name__ == "BernoulliDropout"]
    assert len(drops) == 3 and all(d.rate == 0.3 for d in drops)  # one per block


def test_strided_blocks_halve_length_and_double_width():
    net = build_model(model_cfg("resnet20", depth=8, width=8), (40,), 10).eval()
    x = torch.randn(2, 1, 40)
    shapes = []
    h = net.stem(x)
    for block in net.blocks():
        h = block(h)
        shapes.append(tuple(h.shape[1:]))
    assert shapes == [(8, 40), (16, 20), (32, 10)]


@pytest.mark.parametrize("shape", [(4, 9), (4, 9, 8)])
def test_padding_shortcut_subsamples_and_appends_zero_channels(shape):
    x = torch.randn(2, *shape)
    dims = len(shape) - 1
    out = PadShortcut(4, 10, 2, dims)(x)
    sub = x[:, :, ::2] if dims == 1 else x[:, :, ::2, ::2]
    assert out.shape == (2, 10, *sub.shape[2:])
    assert torch.equal(out[:, :4], sub) and torch.count_nonzero(out[:, 4:]) == 0
    # Same spatial size as a 'same'-padded stride-2 conv: ceil(9 / 2) = 5.
    assert out.shape[2] == 5


# --- stochastic depth ---------------------------------------------------------------
def test_stochastic_depth_survival_follows_linear_rule_over_all_blocks():
    net = build_model(model_cfg("resnet110", survival_last=0.5), (3, 32, 32), 10)
    blocks = net.blocks()
    assert len(blocks) == 54
    got = [b.drop_path.survival_prob for b in blocks]
    want = linear_decay_survival(54, 0.5)
    assert got == pytest.approx(want, abs=1e-12)
    assert got[0] == pytest.approx(1 - 0.5 / 54) and got[-1] == pytest.approx(0.5)
    off = build_model(model_cfg("resnet20"), (3, 32, 32), 10)
    assert all(isinstance(b.drop_path, nn.Identity) for b in off.blocks())


def test_stochastic_depth_scales_branch_at_test_and_drops_it_per_sample_in_training():
    torch.manual_seed(0)
    net = build_model(model_cfg("resnet20", depth=8, width=4, survival_last=0.4), (40,), 10)
    block = net.blocks()[-1]  # p_L = 0.4
    assert isinstance(block.drop_path, DropPath)
    assert block.drop_path.survival_prob == pytest.approx(0.4)
    x = torch.randn(4000, 8, 20)  # the last block maps (8, 20) -> (16, 10)
    block.eval()
    expect = block.after_add(block.shortcut(x) + 0.4 * block.branch(x))
    torch.testing.assert_close(block(x), expect)
    block.train()
    with torch.no_grad():
        out = block(x)
        base = block.after_add(block.shortcut(x))
        kept = block.after_add(block.shortcut(x) + block.branch(x))
    dropped = (out - base).flatten(1).abs().amax(1) == 0
    survived = (out - kept).flatten(1).abs().amax(1) < 1e-5
    assert bool((dropped | survived).all())
    assert dropped.float().mean().item() == pytest.approx(0.6, abs=0.03)


# --- bad input ----------------------------------------------------------------------
IMG = (3, 8, 8)


@pytest.mark.parametrize(
    ("model", "keys", "shape", "message"),
    [
        (
            "resnet20",
            {"depth": 21},
            IMG,
            "model.depth=21 is not valid for resnet_cifar; it must be 6n+2",
        ),
        ("wrn", {"depth": 20}, IMG, "model.depth=20 is not valid for wrn; it must be 6n+4"),
        ("resnet20", {"dims": 2}, (40,), "model.dims=2 does not fit inputs of shape (40,)"),
        (
            "resnet20",
            {"shortcut": "x"},
            IMG,
            "model.shortcut='x' is not valid; choose one of: conv, pad",
        ),
        ("resnet20", {"block": ["linear", "norm"]}, IMG, "must contain 'conv'"),
        ("resnet20", {"block": ["conv", "x"]}, IMG, "model.block='x' is not a known block layer"),
        ("resnet20", {"final": ["x"]}, IMG, "model.final='x'"),
        ("resnet20", {"kernel_size": 4}, IMG, "model.kernel_size=4 is not valid; it must be odd"),
        (
            "resnet20",
            {"norm": "group", "norm_groups": 3},
            IMG,
            "model.norm_groups=3 does not divide",
        ),
        ("resnet20", {"survival_last": 0.0}, IMG, "model.survival_last=0.0 is out of range"),
        ("resnet20", {"dropconnect": 0.5}, IMG, "model.dropconnect applies to 'linear' layers"),
    ],
)
def test_bad_model_config_names_the_key(model, keys, shape, message):
    with pytest.raises(ConfigError) as e:
        build_model(model_cfg(model, **keys), shape, 10)
    assert message in str(e.value)

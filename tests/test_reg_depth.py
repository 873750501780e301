"""Stochastic depth (Huang et al. 2016, arXiv 1603.09382): linear rule and DropPath."""

from __future__ import annotations

import pytest
import torch

from regbench.errors import ConfigError
from regbench.reg.depth import DropPath, drop_path, linear_decay_survival


def test_survival_follows_linear_decay_rule():
    ps = linear_decay_survival(10, 0.5)
    assert len(ps) == 10
    for i, p in enumerate(ps, start=1):
        assert p == pytest.approx(1 - (i / 10) * 0.5, abs=1e-12)
    assert ps[-1] == pytest.approx(0.5)
    assert all(a > b for a, b in zip(ps, ps[1:], strict=False))
    assert linear_decay_survival(3, 1.0) == [1.0, 1.0, 1.0]


def test_drop_path_drops_whole_samples_without_rescaling_and_scales_at_test():
    torch.manual_seed(0)
    x = torch.ones(20000, 3, 4)
    out = drop_path(x, 0.7, training=True)
    per_sample = out.flatten(1)
    # Each sample is either all ones (kept, no rescaling) or all zeros (dropped).
    kept = (per_sample == 1).all(1)
    dropped = (per_sample == 0).all(1)
    assert bool((kept | dropped).all())
    assert kept.float().mean().item() == pytest.approx(0.7, abs=0.015)
    assert torch.equal(drop_path(x, 0.7, training=False), x * 0.7)
    assert drop_path(x, 1.0, training=True) is x


def test_drop_path_module_respects_mode_and_validates():
    m = DropPath(0.6)
    assert "survival_prob=0.6" in repr(m)
    x = torch.randn(8, 5)
    m.eval()
    assert torch.allclose(m(x), 0.6 * x)
    with pytest.raises(ConfigError, match="survival_prob=0"):
        DropPath(0.0)
    with pytest.raises(ConfigError, match="model.survival_last=1.5"):
        linear_decay_survival(4, 1.5, key="model.survival_last")


def _resmlp(*overrides: str):
    from regbench.config import compose
    from regbench.nn import build_model

    cfg = compose(["model=resmlp", "model.width=16", *overrides])
    return build_model(cfg.model, (40,), 10)


def _step_flops(model, x, y) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    return fc.get_total_flops()


def test_batch_mode_skips_whole_branches_with_no_forward_or_backward_compute():
    """A block dropped for the mini-batch never runs its branch: no forward call, no
    gradient, and the step's FLOPs are exactly the stem/head plus the kept blocks."""
    model = _resmlp("model.depth=6", "model.survival_last=0.5", "model.drop_path_mode=batch")
    model.train()
    blocks = list(model.blocks)
    x, y = torch.randn(32, 40), torch.randint(0, 10, (32,))
    for b in blocks:  # cost without any block, then of all blocks, by deleting them
        b.deleted = True
    base = _step_flops(model, x, y)
    for b in blocks:
        b.deleted = False
        b.drop_path.mode = "sample"
    full = _step_flops(model, x, y)
    per_block = (full - base) // len(blocks)
    assert per_block > 0 and base + per_block * len(blocks) == full
    calls = []
    for i, b in enumerate(blocks):
        b.drop_path.mode = "batch"
        b.branch.register_forward_hook(lambda m, a, o, i=i: calls.append(i))
    for seed in range(20):  # the first seed that drops some blocks and keeps others
        torch.manual_seed(seed)
        calls.clear()
        model.zero_grad(set_to_none=True)
        flops = _step_flops(model, x, y)
        kept = sorted(set(calls))
        if 0 < len(kept) < len(blocks):
            break
    assert 0 < len(kept) < len(blocks)
    assert flops == base + per_block * len(kept)
    for i, b in enumerate(blocks):
        grads = [p.grad for p in b.branch.parameters()]
        assert all(g is None for g in grads) == (i not in kept)


def test_batch_mode_draws_once_per_batch_at_the_survival_rate():
    p = DropPath(0.7, mode="batch")
    torch.manual_seed(0)
    skips = [p.skip() for _ in range(4000)]
    assert sum(skips) / 4000 == pytest.approx(0.3, abs=3 * (0.21 / 4000) ** 0.5)
    x = torch.randn(5, 3)
    assert torch.equal(p(x), x)  # a surviving block is kept whole, not rescaled
    p.eval()
    assert not any(p.skip() for _ in range(100)) and torch.allclose(p(x), 0.7 * x)
    assert not any(DropPath(0.7).skip() for _ in range(100))  # sample mode never skips


def test_uniform_survival_has_the_linear_rules_expected_depth():
    from regbench.reg.depth import uniform_survival

    ps = uniform_survival(24, 0.5)
    assert len(set(ps)) == 1
    assert sum(ps) == pytest.approx(sum(linear_decay_survival(24, 0.5)), abs=1e-12)
    assert sum(ps) == pytest.approx(24 - 0.5 * 25 / 2, abs=1e-12)  # 17.75 blocks


def test_bad_drop_path_mode_and_rule_name_the_key():
    with pytest.raises(
        ConfigError,
        match=r"model.drop_path_mode='layer' is not valid; choose one of: batch, sample",
    ):
        _resmlp("model.drop_path_mode=layer")
    with pytest.raises(ConfigError, match=r"model.survival_rule='cosine' is not valid"):
        _resmlp("model.survival_rule=cosine")

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

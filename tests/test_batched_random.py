"""Stochastic layers and transforms of a batched group, per model: dropout and DropPath
masks at each model's own rate and independent across models, DropConnect weight masks,
mixup's per-model mixing coefficient (checked statistically, seeded)."""

from __future__ import annotations

import math

import torch

from regbench.batched.program import dropout
from regbench.batched.runs import build_member


def test_dropout_masks_per_model_rate_and_independent():
    torch.manual_seed(0)
    rates = torch.tensor([0.1, 0.5, 0.8]).view(-1, 1, 1)
    n = 200_000
    out = dropout("bernoulli", torch.ones(3, 1, n), rates, training=True)
    for s, r in enumerate(rates.flatten().tolist()):
        kept = out[s] != 0
        keep, sd = 1 - r, math.sqrt(r * (1 - r) / n)
        assert abs(float(kept.float().mean()) - keep) < 5 * sd
        assert torch.allclose(out[s][kept], torch.tensor(1 / keep))  # inverted scaling
    both = ((out[1] != 0) & (out[2] != 0)).float().mean()
    p = 0.5 * 0.2
    assert abs(float(both) - p) < 5 * math.sqrt(p * (1 - p) / n)  # independent masks
    g = dropout("gaussian", torch.ones(3, 1, n), rates, training=True)
    for s, r in enumerate(rates.flatten().tolist()):
        assert abs(float(g[s].var()) / (r / (1 - r)) - 1) < 0.02
    assert torch.equal(dropout("bernoulli", torch.ones(3, 2, 5), rates, False), torch.ones(3, 2, 5))
    # DropPath (rate = 1 - survival): one draw per (model, sample), no rescaling; eval * p.
    # Activations are feature-major, (S, features, B): a sample's features share the draw.
    d = dropout("path", torch.ones(3, 4, n), rates, training=True)
    assert torch.equal(d, d[:, :1, :].expand_as(d)) and set(d.unique().tolist()) == {0.0, 1.0}
    for s, r in enumerate(rates.flatten().tolist()):
        assert abs(float(d[s, 0, :].mean()) - (1 - r)) < 5 * math.sqrt(r * (1 - r) / n)
    assert torch.allclose(dropout("path", torch.ones(3, 1, 1), rates, False), 1 - rates)


def test_mixup_per_model_alpha():
    """Each model its own lam ~ Beta(a, a) and pairing: the batch mean and the target
    totals are kept exactly; the variance shrinks by E[lam^2 + (1 - lam)^2] =
    1 - a / (2a + 1) (0.857 for a = 0.2, 0.6 for a = 2)."""
    from regbench.batched.transforms import mixup

    torch.manual_seed(0)
    alpha = torch.tensor([0.2, 2.0])
    x, y = torch.randn(2, 1000, 1), torch.randint(0, 10, (2, 1000))
    ratios = []
    for _ in range(300):
        xm, t = mixup(x, y, alpha, 10)
        assert torch.allclose(xm.mean(1), x.mean(1), atol=1e-5)
        assert torch.allclose(t.sum(1), torch.nn.functional.one_hot(y, 10).float().sum(1))
        ratios.append(xm.var(1).squeeze(-1) / x.var(1).squeeze(-1))
    mean = torch.stack(ratios).mean(0)
    assert abs(float(mean[0]) - 0.857) < 0.02 and abs(float(mean[1]) - 0.6) < 0.02


def test_dropconnect_masks_per_model_rate(tiny):
    """Each model masks its own weights at its own rate: with all weights 1 and inputs 1,
    a unit's output is 1 + (kept inputs) / keep, so its mean kept fraction is keep."""
    from regbench.batched.program import StackedMLP

    rates = [0.2, 0.7]
    members = [build_member(tiny(f"model.dropconnect={r}"), [], None) for r in rates]
    prog = StackedMLP([m.model for m in members], "cpu")
    with torch.no_grad():
        prog.flat.fill_(1.0)
    prog.params = prog.views(prog.flat)  # as every forward does
    i, (tok, op) = next((i, o) for i, o in enumerate(prog.ops) if o[0].startswith("linear"))
    assert "dc=True" in tok
    torch.manual_seed(0)
    x = torch.ones(2, 40, 200)  # (S, in, B), feature-major: one mask per pass, for the batch
    kept = torch.stack([prog._apply(i, tok, op, x, True)[:, :, 0] for _ in range(50)])
    for s, r in enumerate(rates):
        frac = ((kept[:, s] - 1) * (1 - r) / 40).mean()
        assert abs(float(frac) - (1 - r)) < 0.01
    assert torch.equal(prog._apply(i, tok, op, x, False), torch.full((2, 32, 200), 41.0))

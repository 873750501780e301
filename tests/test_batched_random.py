"""Stacked forms of the stochastic regularizers (reg/stacked.py and each regularizer's
file): every model's draw is its single form's, bitwise, whatever its rate, width (zero
padding) or companions, an empty slot is rate 0; the masks follow each model's own rate
and are independent across models (checked statistically)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from regbench.reg.augment1d import Augment1d
from regbench.reg.augment_image import CropFlip
from regbench.reg.depth import DropPath
from regbench.reg.dropconnect import DropConnectLinear
from regbench.reg.dropout import BernoulliDropout, GaussianDropout, Uout, VanillaDropout
from regbench.reg.labels import Mixup
from regbench.streams import TRAIN, Clock, Stream, bind


def bound(objs, step: int = 7) -> list:
    """Each object bound to its own run's stream (seeds 0, 1, ...), clocks at ``step``."""
    for seed, obj in enumerate(objs):
        clock = Clock()
        clock.now = (TRAIN, step)
        bind(obj, Stream.of_run(seed).child("layer", "x"), clock)
    return objs


def transposed(t: torch.Tensor) -> torch.Tensor:
    return t.transpose(1, 2)  # (S, B, F) <-> (S, F, B), the MLP program's layout


LAYERS = {
    "bernoulli": lambda r: BernoulliDropout(r),
    "vanilla": lambda r: VanillaDropout(r),
    "gaussian": lambda r: GaussianDropout(r),
    "uout": lambda r: Uout(r),
    "drop_path": lambda r: DropPath(1.0 - r),
}


@pytest.mark.parametrize("kind", list(LAYERS))
def test_stacked_noise_is_each_models_single_form_bitwise(kind):
    rates, widths, B = [0.2, 0.5, 0.0], [24, 16, 24], 40  # model 2: an empty slot
    layers = bound([nn.Identity() if r == 0 else LAYERS[kind](r) for r in rates])
    xs = [torch.randn(B, w) for w in widths]  # each model's single-form input (B, F_s)
    x = torch.zeros(3, B, max(widths))
    for s, xi in enumerate(xs):
        x[s, :, : xi.shape[1]] = xi
    form = type(layers[0]).stacked(layers)
    for training in (True, False):
        for m in layers:
            m.train(training)
        out = transposed(form(transposed(x), training, [(B, w) for w in widths], transposed))
        for s, (m, xi) in enumerate(zip(layers, xs, strict=True)):
            assert torch.equal(out[s, :, : xi.shape[1]], m(xi)), (kind, training, s)


def test_stacked_dropconnect_masks_are_each_models_own_bitwise():
    layers = bound([DropConnectLinear(8, 5, 0.3), DropConnectLinear(6, 4, 0.6)])
    w = torch.zeros(2, 5, 8)
    for s, m in enumerate(layers):
        w[s, : m.out_features, : m.in_features] = m.weight.detach()
    form = DropConnectLinear.stacked(layers)
    out = form(w, True, [tuple(m.weight.shape) for m in layers])
    for s, m in enumerate(layers):
        assert torch.equal(out[s, : m.out_features, : m.in_features], m.masked_weight().detach())


def test_stacked_batch_transforms_are_each_models_single_form_bitwise():
    x, y = torch.randn(3, 20, 40), torch.randint(0, 10, (3, 20))
    for make in (lambda: Augment1d(4, 0.1, 0.05), lambda: Mixup(0.3, 10)):
        objs = bound([make() for _ in range(3)])
        xm, tm = type(objs[0]).stacked(objs)(x, y)
        for s, obj in enumerate(objs):
            xs, ts = obj(x[s], y[s])
            assert torch.equal(xm[s], xs) and torch.equal(tm[s], ts), obj
    images = torch.randn(2, 6, 3, 8, 8)  # (S, B, C, H, W)
    crops = bound([CropFlip(2, True), CropFlip(2, True)])
    out, _ = CropFlip.stacked(crops)(images, y[:2, :6])
    for s, c in enumerate(crops):
        assert torch.equal(out[s], c(images[s], y[s, :6])[0])


def test_noise_masks_follow_each_models_rate_and_are_independent():
    rates, n = [0.1, 0.5, 0.8], 200_000
    layers = bound([BernoulliDropout(r) for r in rates])
    out = BernoulliDropout.stacked(layers)(torch.ones(3, n, 1), True, [(n, 1)] * 3)
    for s, r in enumerate(rates):
        kept = out[s] != 0
        keep, sd = 1 - r, math.sqrt(r * (1 - r) / n)
        assert abs(float(kept.float().mean()) - keep) < 5 * sd
        assert torch.allclose(out[s][kept], torch.tensor(1 / keep))  # inverted scaling
    both = ((out[1] != 0) & (out[2] != 0)).float().mean()
    p = 0.5 * 0.2
    assert abs(float(both) - p) < 5 * math.sqrt(p * (1 - p) / n)  # independent masks
    gauss = bound([GaussianDropout(r) for r in rates])
    g = GaussianDropout.stacked(gauss)(torch.ones(3, n, 1), True, [(n, 1)] * 3)
    for s, r in enumerate(rates):
        assert abs(float(g[s].var()) / (r / (1 - r)) - 1) < 0.02
    # DropPath: one draw per (model, sample), no rescaling; eval multiplies by survival
    paths = bound([DropPath(1 - r) for r in rates])
    d = transposed(DropPath.stacked(paths)(torch.ones(3, 4, n), True, [(n, 4)] * 3, transposed))
    assert torch.equal(d, d[:, :, :1].expand_as(d)) and set(d.unique().tolist()) == {0.0, 1.0}
    for s, r in enumerate(rates):
        assert abs(float(d[s, :, 0].mean()) - (1 - r)) < 5 * math.sqrt(r * (1 - r) / n)
    at_eval = DropPath.stacked(paths)(torch.ones(3, 1, 1), False, [(1, 1)] * 3)
    assert torch.allclose(at_eval.flatten(), 1 - torch.tensor(rates))


def test_mixup_per_model_alpha():
    """Each model its own lam ~ Beta(a, a) and pairing: the batch mean and the target
    totals are kept exactly; the variance shrinks by E[lam^2 + (1 - lam)^2] =
    1 - a / (2a + 1) (0.857 for a = 0.2, 0.6 for a = 2)."""
    mixes = [Mixup(0.2, 10), Mixup(2.0, 10)]
    x, y = torch.randn(2, 1000, 1), torch.randint(0, 10, (2, 1000))
    ratios = []
    for step in range(300):
        form = Mixup.stacked(bound(mixes, step))
        xm, t = form(x, y)
        assert torch.allclose(xm.mean(1), x.mean(1), atol=1e-5)
        assert torch.allclose(t.sum(1), torch.nn.functional.one_hot(y, 10).float().sum(1))
        ratios.append(xm.var(1).squeeze(-1) / x.var(1).squeeze(-1))
    mean = torch.stack(ratios).mean(0)
    assert abs(float(mean[0]) - 0.857) < 0.02 and abs(float(mean[1]) - 0.6) < 0.02

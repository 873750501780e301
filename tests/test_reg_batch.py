"""Batch-side regularizers: mixup, label smoothing, MNIST-1D augmentation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from regbench.config import compose
from regbench.errors import ConfigError
from regbench.reg import build_regularizers
from regbench.reg.augment1d import Augment1d, random_scale, random_shift
from regbench.reg.labels import Mixup


def test_mixup_makes_matching_convex_combinations_of_inputs_and_targets():
    torch.manual_seed(0)
    x = torch.randn(32, 40)
    y = torch.randint(0, 10, (32,))
    mix = Mixup(alpha=0.4, num_classes=10)
    xm, t = mix(x, y)
    assert t.shape == (32, 10)
    assert torch.allclose(t.sum(1), torch.ones(32))
    # Recover lam and the pairing from the targets and check the inputs used the same.
    onehot = F.one_hot(y, 10).float()
    # t[i, y_i] = lam + (1 - lam) [y_j == y_i]: rows paired with another class show lam
    lam = t[torch.arange(32), y].min()
    for i in range(32):
        # x_i' = lam x_i + (1 - lam) x_j for some j whose target mixes the same way
        resid = xm[i] - lam * x[i]
        j = int(((resid - (1 - lam) * x).norm(dim=1)).argmin())
        assert torch.allclose(xm[i], lam * x[i] + (1 - lam) * x[j], atol=1e-5)
        assert torch.allclose(t[i], lam * onehot[i] + (1 - lam) * onehot[j], atol=1e-5)
    assert 0.0 <= float(lam) <= 1.0


def test_mixup_lambda_follows_beta_alpha_alpha():
    torch.manual_seed(1)
    mix = Mixup(alpha=0.2, num_classes=2)
    eye = torch.eye(8)  # x_i = e_i, so x'_i = lam e_i + (1 - lam) e_perm(i)
    y = torch.zeros(8, dtype=torch.long)
    lams = []
    for _ in range(4000):
        xm, _ = mix(eye, y)
        moved = xm.diagonal() < 1  # samples paired with another one: diagonal = lam
        if moved.any():  # else the pairing was the identity: no information about lam
            lams.append(xm.diagonal()[moved][0])
    lam = torch.stack(lams)
    # Beta(a, a) with a = 0.2: mean 1/2, variance 1 / (4 (2a + 1)).
    assert lam.mean().item() == pytest.approx(0.5, abs=0.02)
    assert lam.var().item() == pytest.approx(1 / (4 * 1.4), rel=0.08)


def test_mixup_gets_num_classes_and_label_smoothing_is_a_loss_term():
    b = build_regularizers(
        compose(
            [
                "reg=[mixup,label_smoothing]",
                "reg.mixup.alpha=1.0",
                "reg.label_smoothing.smoothing=0.2",
            ]
        ),
        num_classes=7,
    )
    [mix] = b.transforms
    assert mix.alpha == 1.0 and mix.num_classes == 7
    assert mix(torch.zeros(4, 3), torch.tensor([0, 1, 2, 6]))[1].shape == (4, 7)
    smooth = b.penalties["label_smoothing"]
    # data loss + smoothing term = CE against (1 - eps) t + eps / K, for hard and soft t
    logits = torch.randn(5, 4)
    y = torch.tensor([0, 1, 2, 3, 0])
    soft = 0.8 * F.one_hot(y, 4) + 0.2 / 4
    want = -(soft * logits.log_softmax(1)).sum(1).mean()
    got = F.cross_entropy(logits, y) + smooth(None, logits, y, 0)
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
    t = torch.softmax(torch.randn(5, 4), 1)  # mixup's soft targets
    want = F.cross_entropy(logits, t, label_smoothing=0.2)
    got = F.cross_entropy(logits, t) + smooth(None, logits, t, 0)
    assert got.item() == pytest.approx(want.item(), rel=1e-6)


def test_mixup_without_num_classes_is_refused():
    with pytest.raises(ConfigError, match="reg.mixup: mixup needs the number of classes"):
        build_regularizers(compose(["reg=[mixup]"]))


def test_shift_is_a_circular_shift_per_sample():
    torch.manual_seed(2)
    x = torch.arange(40.0).repeat(500, 1)  # (B, L), distinct values per position
    out = random_shift(x, 4)
    shifts = (out[:, 0] != 0) * (40 - out[:, 0])  # out[:, 0] = x[-s] = (40 - s) % 40
    shifts = torch.where(shifts > 20, shifts - 40, shifts)
    for i in range(0, 500, 50):
        assert torch.equal(out[i], torch.roll(x[i], int(shifts[i])))
    assert set(shifts.tolist()) == set(range(-4, 5))
    # (B, C, L) works along L with one shift per sample
    x3 = torch.arange(40.0).repeat(6, 2, 1)
    o3 = random_shift(x3, 3)
    assert torch.equal(o3[:, 0], o3[:, 1])


def test_scale_and_noise_have_the_configured_spread():
    torch.manual_seed(3)
    x = torch.ones(20000, 40)
    s = random_scale(x, 0.1)
    per_sample = s[:, 0]
    assert torch.equal(s, per_sample[:, None].expand_as(s))  # one factor per sample
    assert per_sample.min() >= 0.9 and per_sample.max() <= 1.1
    assert per_sample.var().item() == pytest.approx(0.2**2 / 12, rel=0.05)  # U(0.9, 1.1)
    aug = Augment1d(max_shift=0, scale=0.0, noise=0.05)
    out, y = aug(x, torch.zeros(20000))
    assert (out - x).std().item() == pytest.approx(0.05, rel=0.02)
    assert torch.equal(y, torch.zeros(20000))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["reg=[mixup]", "reg.mixup.alpha=0"], "reg.mixup.alpha=0 is out of range"),
        (
            ["reg=[label_smoothing]", "reg.label_smoothing.smoothing=1.0"],
            "reg.label_smoothing.smoothing=1.0 is out of range; allowed: [0, 1)",
        ),
        (["reg=[augment1d]", "reg.augment1d.max_shift=-1"], "reg.augment1d.max_shift=-1"),
        (["reg=[augment1d]", "reg.augment1d.noise=-0.1"], "reg.augment1d.noise=-0.1"),
        (["reg=[augment1d]", "reg.augment1d.scale=1.5"], "reg.augment1d.scale=1.5"),
    ],
)
def test_bad_batch_settings_name_the_key(overrides, message):
    with pytest.raises(ConfigError) as e:
        build_regularizers(compose(overrides))
    assert message in str(e.value)

"""Batched random crop + flip (regbench.reg.augment_image)."""

from __future__ import annotations

import pytest
import torch

from regbench.config import compose
from regbench.errors import ConfigError
from regbench.reg import build_regularizers
from regbench.reg.augment_image import CropFlip, crop_flip


def _coded_images(b: int, c: int, h: int, w: int) -> torch.Tensor:
    """Pixel (i, j) of every channel holds 1 + i * w + j, so a crop reveals its source;
    the padding (0) is distinguishable from every pixel."""
    code = 1.0 + torch.arange(h * w, dtype=torch.float32).view(h, w)
    return code.expand(b, c, h, w).clone()


def _recover(out: torch.Tensor, h: int, w: int, p: int):
    """(row offset, column offset, flipped) of every sample, read off its centre pixels."""
    ci, cj = h // 2, w // 2
    centre = out[:, 0, ci, cj].long() - 1
    flipped = out[:, 0, ci, cj + 1] < out[:, 0, ci, cj]
    src_i, src_j = centre // w, centre % w
    dy = src_i - ci + p
    # unflipped: out col j <- padded col dx + j; flipped: out col j <- padded col dx + w-1-j
    dx = torch.where(flipped, src_j + p - (w - 1 - cj), src_j + p - cj)
    return dy, dx, flipped


def _expected(x: torch.Tensor, dy, dx, flipped, p: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    xp = torch.nn.functional.pad(x, (p, p, p, p))
    out = []
    for k in range(len(x)):
        crop = xp[k, :, dy[k] : dy[k] + h, dx[k] : dx[k] + w]
        out.append(crop.flip(-1) if flipped[k] else crop)
    return torch.stack(out)


def test_every_sample_is_a_padded_crop_or_its_mirror_image():
    torch.manual_seed(0)
    x = _coded_images(64, 3, 12, 14)
    out = crop_flip(x, padding=4, flip=True)
    assert out.shape == x.shape and out.dtype == x.dtype
    dy, dx, flipped = _recover(out, 12, 14, 4)
    assert int(dy.min()) >= 0 and int(dy.max()) <= 8 and int(dx.min()) >= 0 and int(dx.max()) <= 8
    assert torch.equal(out, _expected(x, dy, dx, flipped, 4))
    # channels move together (one offset per sample, not per channel)
    assert torch.equal(out[:, 0], out[:, 2])


def test_offsets_and_flips_are_uniform_per_sample():
    torch.manual_seed(1)
    n = 9000
    out = crop_flip(_coded_images(n, 1, 12, 12), padding=4, flip=True)
    dy, dx, flipped = _recover(out, 12, 12, 4)
    assert flipped.float().mean().item() == pytest.approx(0.5, abs=0.03)
    for offsets in (dy, dx):
        freq = torch.bincount(offsets, minlength=9).float() / n
        assert len(freq) == 9
        assert torch.allclose(freq, torch.full((9,), 1 / 9), atol=0.02), freq
    # row and column offsets are drawn independently
    assert abs(torch.corrcoef(torch.stack([dy.float(), dx.float()]))[0, 1].item()) < 0.05


def test_fill_value_and_identity_settings():
    x = torch.randn(8, 3, 6, 6)
    assert crop_flip(x, padding=0, flip=False) is x
    torch.manual_seed(2)
    only_flip = crop_flip(x, padding=0, flip=True)
    same = (only_flip == x).flatten(1).all(1)
    mirrored = (only_flip == x.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and 0 < int(mirrored.sum()) < 8
    torch.manual_seed(3)
    out = crop_flip(torch.zeros(200, 1, 4, 4), padding=2, flip=False, fill=-7.0)
    assert set(out.unique().tolist()) == {-7.0, 0.0}


def test_signals_are_shifted_with_zero_padding_and_mirrored():
    torch.manual_seed(4)
    length, p = 20, 3
    x = (1.0 + torch.arange(length, dtype=torch.float32)).expand(500, 2, length).clone()
    out = crop_flip(x, padding=p, flip=True)
    xp = torch.nn.functional.pad(x, (p, p))
    for k in range(len(x)):
        candidates = [xp[k, :, d : d + length] for d in range(2 * p + 1)]
        candidates += [c.flip(-1) for c in candidates]
        assert any(torch.equal(out[k], c) for c in candidates), k
    with pytest.raises(ValueError, match=r"crop_flip needs \(B, C, H, W\) images"):
        crop_flip(torch.zeros(4, 40))


def test_reg_config_adds_a_train_batch_transform():
    cfg = compose(["reg=[crop_flip]", "reg.crop_flip.padding=2"])
    bundle = build_regularizers(cfg)
    [t] = [t for t in bundle.transforms if isinstance(t, CropFlip)]
    assert (t.padding, t.flip, t.fill) == (2, True, 0.0)
    x, y = torch.randn(5, 3, 8, 8), torch.arange(5)
    x2, y2 = t(x, y)
    assert x2.shape == x.shape and y2 is y


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("reg.crop_flip.padding=-1", "reg.crop_flip.padding=-1 is not valid; it must be an int"),
        ("reg.crop_flip.flip=2", "reg.crop_flip.flip=2 is not valid; it must be true or false"),
    ],
)
def test_bad_crop_flip_config_names_the_key(override, message):
    with pytest.raises(ConfigError) as e:
        build_regularizers(compose(["reg=[crop_flip]", override]))
    assert message in str(e.value)

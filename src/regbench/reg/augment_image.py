"""Random crop with zero padding and horizontal flip, for a whole batch at once.

The standard CIFAR augmentation of He et al. 2016 (arXiv 1512.03385, section 4.2):
"4 pixels are padded on each side, and a 32x32 crop is randomly sampled from the padded
image or its horizontal flip". It runs on the batch's device after normalisation, so the
zero padding is the dataset mean, as with He et al.'s mean-subtracted inputs (``fill``
changes it).

Vectorised: the batch is padded once, (B, C, H + 2p, W + 2p); every sample draws a row
offset, a column offset and a flip bit; one gather with per-sample row and column index
vectors takes the crop, the flip being the reversed column vector. No per-sample loop.
Signals (B, C, L) get the same treatment along L. The draws are separate from the
gather, so a stacked form (x (S, B, C, ...)) draws each model's from its own stream with
the single form's calls and crops all S * B samples at once.

Config (``reg=[crop_flip]``)::

    crop_flip:
      kind: crop_flip
      padding: 4      # pixels of padding on each side (0 = no crop)
      flip: true      # horizontal flip with probability 1/2
      fill: 0.0       # value of the padding, in normalised units (0 = dataset mean)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor

from regbench.errors import ConfigError, in_range
from regbench.reg import REGULARIZERS
from regbench.streams import Drawn


class Crops(NamedTuple):
    """One batch's draws: flip bits (B,) or None, column and row offsets (B,) (rows:
    images only) into the padded sample."""

    mirrored: Tensor | None
    cols: Tensor
    rows: Tensor | None


def _check(x: Tensor) -> None:
    if x.dim() not in (3, 4):
        raise ValueError(
            f"crop_flip needs (B, C, H, W) images or (B, C, L) signals, got {tuple(x.shape)}"
        )


def draw_crops(
    x: Tensor, padding: int, flip: bool, generator: torch.Generator | None = None
) -> Crops:
    """The random numbers of one batch ``x`` in a fixed order: flips, columns, rows."""
    b, dev = x.shape[0], x.device

    def draw(high: int) -> Tensor:
        return torch.randint(0, high, (b,), device=dev, generator=generator)

    mirrored = draw(2).bool() if flip else None
    cols = draw(2 * padding + 1)
    rows = draw(2 * padding + 1) if x.dim() == 4 else None
    return Crops(mirrored, cols, rows)


def crop(x: Tensor, d: Crops, padding: int, fill: float) -> Tensor:
    """Apply one batch's draws: pad by ``padding`` with ``fill``, take the crop at the
    drawn offsets, mirrored where drawn."""
    b, dev, p, w = x.shape[0], x.device, int(padding), x.shape[-1]
    cols = torch.arange(w, device=dev).expand(b, w)  # (B, W)
    if d.mirrored is not None:
        cols = torch.where(d.mirrored[:, None], cols.flip(1), cols)
    cols = cols + d.cols[:, None]  # (B, W), offsets into the padded width
    batch = torch.arange(b, device=dev)
    if x.dim() == 3:
        xp = F.pad(x, (p, p), value=fill)  # (B, C, L + 2p)
        # xp[i, :, cols[i]] for every i: (B, C, L) after moving C back to dim 1.
        out = xp.permute(0, 2, 1)[batch[:, None], cols].permute(0, 2, 1)
    else:
        xp = F.pad(x, (p, p, p, p), value=fill)  # (B, C, H + 2p, W + 2p)
        rows = torch.arange(x.shape[2], device=dev) + d.rows[:, None]  # (B, H)
        # Channels last so one advanced index gathers (B, H, W, C), then back to (B, C, H, W).
        out = xp.permute(0, 2, 3, 1)[batch[:, None, None], rows[:, :, None], cols[:, None, :]]
        out = out.permute(0, 3, 1, 2)
    # The gather leaves channels-last strides. Hand the batch on in the layout the model
    # expects (contiguous NCHW / NCL): oneDNN takes its NHWC path for a channels-last
    # input, and on AVX2 CPUs its backward-weights kernel for strided 1x1 convolutions
    # with few input channels crashes (one thread) or returns wrong gradients (several;
    # relative error 17 on ResNet-18 k=4 here). docs/ARCHITECTURE.md, "Numerics".
    return out.contiguous()


def crop_flip(
    x: Tensor,
    padding: int = 4,
    flip: bool = True,
    fill: float = 0.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Per-sample random crop of size (H, W) from ``x`` padded by ``padding`` with
    ``fill``, mirrored left-right with probability 1/2 if ``flip``. ``x``: (B, C, H, W)
    or (B, C, L); the result has the same shape, device and dtype."""
    _check(x)
    if padding == 0 and not flip:
        return x
    return crop(x, draw_crops(x, padding, flip, generator), padding, fill)


class CropFlip(Drawn):
    """Train-batch transform ``(x, target) -> (crop_flip(x), target)``, drawn from its
    stream."""

    per_model: tuple[str, ...] = ()  # one setting for a whole group

    def __init__(self, padding: int = 4, flip: bool = True, fill: float = 0.0) -> None:
        self.padding, self.flip, self.fill = int(padding), bool(flip), float(fill)

    def __call__(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        return crop_flip(x, self.padding, self.flip, self.fill, self.generator(x.device)), target

    @classmethod
    def stacked(cls, members: Sequence[CropFlip]) -> StackedCropFlip:
        return StackedCropFlip(members)

    def __repr__(self) -> str:
        return f"CropFlip(padding={self.padding}, flip={self.flip}, fill={self.fill:g})"


class StackedCropFlip:
    """S models' crops of x (S, B, C, ...): each model's draws from its own stream, one
    gather over all S * B samples."""

    def __init__(self, members: Sequence[CropFlip]) -> None:
        self.members, m = list(members), members[0]
        self.padding, self.flip, self.fill = m.padding, m.flip, m.fill

    def __call__(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        flat = x.reshape(-1, *x.shape[2:])  # (S * B, C, ...)
        _check(flat)
        if self.padding == 0 and not self.flip:
            return x, target
        draws = [
            draw_crops(xs, self.padding, self.flip, m.generator(x.device))
            for m, xs in zip(self.members, x, strict=True)
        ]
        d = Crops(*(None if p[0] is None else torch.cat(p) for p in zip(*draws, strict=True)))
        return crop(flat, d, self.padding, self.fill).view_as(x), target


@REGULARIZERS.register("crop_flip", "cropflip", "crop")
def _crop_flip(entry: DictConfig, bundle, key: str) -> None:
    padding = entry.padding
    if not isinstance(padding, int) or isinstance(padding, bool) or padding < 0:
        raise ConfigError(f"{key}.padding={padding!r} is not valid; it must be an integer >= 0")
    flip = entry.flip
    if not isinstance(flip, bool):
        raise ConfigError(f"{key}.flip={flip!r} is not valid; it must be true or false")
    fill = entry.fill
    in_range(f"{key}.fill", fill)
    bundle.transforms.append(CropFlip(padding, flip, fill))

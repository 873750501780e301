"""Recording every random draw of the runs trained in a block (tests' helper): the raw
draw of every noise layer, batch-mode DropPath decisions, augment1d's and mixup's draws,
keyed by (stream key, counter); crop_flip's crops and each run's label noise in order."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch

from regbench.data import noise
from regbench.reg import augment_image
from regbench.reg.augment1d import Augment1d
from regbench.reg.depth import DropPath
from regbench.reg.dropout import GaussianDropout
from regbench.reg.labels import Mixup
from regbench.reg.stacked import Noise


@contextmanager
def recorded() -> Iterator[dict]:
    """Every draw of every run trained inside, by (stream key, counter)."""
    with pytest.MonkeyPatch.context() as mp:
        yield _record(mp)


def _record(monkeypatch) -> dict:
    log: dict = {}

    def wrap(cls, name, record, draws=lambda obj: True):
        orig = getattr(cls, name)

        def method(self, *args, **kw):
            out = orig(self, *args, **kw)
            if self.stream is not None and draws(self):  # unbound: a check outside runs
                k = (self.stream.key, self.clock.now)
                assert k not in log, f"{name} drawn twice at {k}"
                log[k] = record(out)
            return out

        monkeypatch.setattr(cls, name, method)

    def copied(t):
        return None if t is None else t.detach().clone()

    wrap(Noise, "draw", copied)
    wrap(GaussianDropout, "draw", copied)
    wrap(DropPath, "dropped", lambda b: b, lambda m: m.mode == "batch")
    wrap(Augment1d, "draws", lambda d: tuple(map(copied, d)))
    wrap(Mixup, "draws", lambda d: (d[0], copied(d[1])))
    crops = log.setdefault("crop_flip", [])
    orig = augment_image.draw_crops

    def draw_crops(x, padding, flip, generator=None):
        out = orig(x, padding, flip, generator)
        if generator is not None:
            crops.append(tuple(map(copied, out)))
        return out

    monkeypatch.setattr(augment_image, "draw_crops", draw_crops)
    labels = log.setdefault("label_noise", [])  # each run's noisy labels, in build order
    corrupt = noise.corrupt_labels

    def corrupt_labels(*a, **kw):
        out = corrupt(*a, **kw)
        labels.append(tuple(map(copied, out)))
        return out

    monkeypatch.setattr(noise, "corrupt_labels", corrupt_labels)
    return log


def same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b

"""MNIST-1D augmentation on batched tensors: random shift, amplitude scale, noise.

MNIST-1D (Greydanus & Kobak 2020, arXiv 2011.14439) builds each signal from a template
by shifting, scaling, adding noise; these transforms draw fresh versions of the same
nuisances for every training sample. Input x is (B, L) or (B, C, L); ops act on the
last dim, all vectorized (no per-sample Python loop):

- shift: circular shift by an integer in ``[-max_shift, max_shift]`` per sample;
- scale: amplitude multiplied by ``U(1 - scale, 1 + scale)`` per sample;
- noise: additive ``N(0, noise^2)`` per element.

The draws (shifts, factors, noise) are separate from their application, so the stacked
form (a batched group: x (S, B, ...)) draws each model's with the single form's calls
from that model's stream, concatenates them and applies them once to the S * B samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from omegaconf import DictConfig
from torch import Tensor

from regbench.errors import ConfigError, in_range
from regbench.reg import REGULARIZERS
from regbench.streams import Drawn


class Draws(NamedTuple):
    """One batch's nuisances: shift (B, 1) integers, scale (B, 1, ..., 1), noise like x."""

    shift: Tensor | None
    scale: Tensor | None
    noise: Tensor | None


def draw(
    x: Tensor, max_shift: int, scale: float, noise: float, generator: torch.Generator | None
) -> Draws:
    """The random numbers of one batch ``x`` (B, ...) in a fixed order: shifts, scales,
    noise (each only where its setting is not 0)."""
    b, dev = x.shape[0], x.device
    s = sc = n = None
    if max_shift:
        s = torch.randint(-max_shift, max_shift + 1, (b, 1), device=dev, generator=generator)
    if scale:
        shape = (b,) + (1,) * (x.dim() - 1)
        sc = torch.empty(shape, dtype=x.dtype, device=dev).uniform_(
            1 - scale, 1 + scale, generator=generator
        )
    if noise:
        n = torch.empty_like(x).normal_(generator=generator)
    return Draws(s, sc, n)


def shifted(x: Tensor, shift: Tensor) -> Tensor:
    """Circular shift of each sample of x (B, ..., L) by ``shift`` (B, 1) along L."""
    b, length = x.shape[0], x.shape[-1]
    idx = (torch.arange(length, device=x.device).view(1, -1) - shift) % length  # (B, L)
    idx = idx.view(b, *([1] * (x.dim() - 2)), length).expand_as(x)
    return x.gather(-1, idx)  # out[..., i] = x[..., i - shift]


def augment(x: Tensor, d: Draws, noise: float | Tensor) -> Tensor:
    """Apply one batch's draws: shift, then scale, then add ``noise * N(0, 1)``."""
    if d.shift is not None:
        x = shifted(x, d.shift)
    if d.scale is not None:
        x = x * d.scale
    return x if d.noise is None else x + noise * d.noise


def random_shift(x: Tensor, max_shift: int, generator: torch.Generator | None = None) -> Tensor:
    return augment(x, draw(x, max_shift, 0.0, 0.0, generator), 0.0)


def random_scale(x: Tensor, scale: float, generator: torch.Generator | None = None) -> Tensor:
    return augment(x, draw(x, 0, scale, 0.0, generator), 0.0)


def add_noise(x: Tensor, std: float, generator: torch.Generator | None = None) -> Tensor:
    return augment(x, draw(x, 0, 0.0, std, generator), std)


class Augment1d(Drawn):
    """Batch transform ``(x, target) -> (augmented x, target)``, drawn from its stream."""

    per_model: tuple[str, ...] = ()  # one setting for a whole group

    def __init__(self, max_shift: int = 0, scale: float = 0.0, noise: float = 0.0) -> None:
        self.max_shift, self.scale, self.noise = int(max_shift), float(scale), float(noise)

    def draws(self, x: Tensor) -> Draws:
        return draw(x, self.max_shift, self.scale, self.noise, self.generator(x.device))

    def __call__(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        return augment(x, self.draws(x), self.noise), target

    @classmethod
    def stacked(cls, members: Sequence[Augment1d]) -> StackedAugment1d:
        return StackedAugment1d(members)

    def __repr__(self) -> str:
        return f"Augment1d(max_shift={self.max_shift}, scale={self.scale:g}, noise={self.noise:g})"


class StackedAugment1d:
    """S models' augmentation of x (S, B, ...): each model's draws from its own stream on
    its own batch, then one application to all S * B samples."""

    def __init__(self, members: Sequence[Augment1d]) -> None:
        self.members = list(members)

    def __call__(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        draws = [m.draws(xs) for m, xs in zip(self.members, x, strict=True)]
        flat = Draws(*(None if d[0] is None else torch.cat(d) for d in zip(*draws, strict=True)))
        out = augment(x.reshape(-1, *x.shape[2:]), flat, self.members[0].noise)
        return out.view_as(x), target


@REGULARIZERS.register("augment1d", "augment_1d")
def add_augment1d(entry: DictConfig, bundle, key: str) -> None:
    max_shift = entry.max_shift
    if not isinstance(max_shift, int) or isinstance(max_shift, bool) or max_shift < 0:
        raise ConfigError(f"{key}.max_shift={max_shift!r} is not valid; it must be an integer >= 0")
    in_range(f"{key}.scale", entry.scale, 0.0, 1.0, hi_open=True)
    in_range(f"{key}.noise", entry.noise, 0.0)
    bundle.transforms.append(Augment1d(max_shift, entry.scale, entry.noise))

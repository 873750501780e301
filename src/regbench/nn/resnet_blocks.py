"""Residual blocks from the order spec: shortcuts, one block.

A residual block computes ``after_add(shortcut(x) + drop_path(branch(x)))``, where

- ``branch`` is an order spec built by :func:`~regbench.nn.layers.build_layers`, e.g.
  the post-activation basic block ``[conv, norm, act, conv, norm]`` with
  ``after_add = [act]`` (He et al. 2016, arXiv 1512.03385), the pre-activation block
  ``[norm, act, conv, norm, act, conv]`` with ``after_add = []`` (He et al. 2016b,
  arXiv 1603.05027), or the wide block ``[norm, act, conv, norm, act, dropout, conv]``
  (Zagoruyko & Komodakis 2016, arXiv 1605.07146);
- ``shortcut`` is the identity when shapes agree; otherwise a strided 1x1 convolution
  (+ norm), or, as "option A" of He et al. 2016, a strided subsample with zero channels
  appended (no parameters);
- ``drop_path`` is stochastic depth on the branch (Huang et al. 2016, arXiv 1603.09382),
  an empty slot when the survival probability is 1.
"""

from __future__ import annotations

from dataclasses import replace

import torch.nn.functional as F
from torch import Tensor, nn

from regbench.errors import ConfigError, choice
from regbench.nn.layers import LayerSpec, build_layers
from regbench.reg.depth import DropPath

SHORTCUTS = ("conv", "pad")


class PadShortcut(nn.Module):
    """Option A of He et al. 2016: keep every ``stride``-th position and append zero
    channels, (B, c_in, *S) -> (B, c_out, *S / stride). Matches a 'same'-padded strided
    conv, whose output length is ceil(L / stride)."""

    def __init__(self, c_in: int, c_out: int, stride: int, dims: int) -> None:
        super().__init__()
        self.extra, self.stride, self.dims = c_out - c_in, stride, dims

    def forward(self, x: Tensor) -> Tensor:
        s = self.stride
        x = x[:, :, ::s] if self.dims == 1 else x[:, :, ::s, ::s]
        # F.pad pads dimensions from the last one backwards: (spatial..., channels).
        return F.pad(x, (0, 0) * self.dims + (0, self.extra))

    def extra_repr(self) -> str:
        return f"extra_channels={self.extra}, stride={self.stride}"


def make_shortcut(
    kind: str, spec: LayerSpec, c_in: int, c_out: int, stride: int, norm: bool
) -> nn.Module:
    """Identity when shapes agree, else a 1x1 conv (+ norm if ``norm``) or zero padding."""
    choice("model.shortcut", kind, SHORTCUTS)
    if c_in == c_out and stride == 1:
        return nn.Identity()
    if kind == "pad":
        if c_out < c_in:
            raise ConfigError(
                f"model.shortcut='pad' cannot map {c_in} to {c_out} channels; use 'conv'"
            )
        return PadShortcut(c_in, c_out, stride, spec.dims)
    proj = replace(spec, kernel_size=1, stride=stride)
    return build_layers(["conv", "norm"] if norm else ["conv"], proj, c_in, c_out)


class ConvResidualBlock(nn.Module):
    """``after_add(shortcut(x) + drop_path(branch(x)))``; shapes (B, C, *S)."""

    def __init__(
        self, branch: nn.Module, shortcut: nn.Module, drop_path: nn.Module, after_add: nn.Module
    ) -> None:
        super().__init__()
        self.branch = branch
        self.shortcut = shortcut
        self.drop_path = drop_path
        self.after_add = after_add

    def forward(self, x: Tensor) -> Tensor:
        return self.after_add(self.shortcut(x) + self.drop_path(self.branch(x)))


def residual_block(
    order: list[str],
    after_add: list[str],
    spec: LayerSpec,
    c_in: int,
    c_out: int,
    stride: int,
    shortcut: str,
    shortcut_norm: bool,
    survival: float,
) -> ConvResidualBlock:
    """One block; the first weight layer of ``order`` carries ``stride`` and c_in -> c_out."""
    strided = replace(spec, stride=stride)
    return ConvResidualBlock(
        branch=build_layers(order, strided, c_in, c_out),
        shortcut=make_shortcut(shortcut, spec, c_in, c_out, stride, shortcut_norm),
        drop_path=nn.Identity() if survival >= 1.0 else DropPath(survival),
        after_add=optional_layers(after_add, spec, c_out),
    )


def optional_layers(order: list[str], spec: LayerSpec, c: int) -> nn.Module:
    """A width-preserving order spec (e.g. ``[norm, act]``); ``[]`` is an empty slot."""
    return build_layers(order, spec, c, c) if order else nn.Identity()

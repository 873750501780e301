"""Convolutions of S models at once: im2col and one batched matrix product.

Activations of a batched conv net are feature-major, (S, C, B, *spatial) (models, then
channels, then samples: :mod:`regbench.batched.program`). A convolution of model s is
the product of its weight (C_out, C_in * k^d) with the columns of its input, the k^d
shifted copies of every channel (C_in * k^d, B * out): one ``torch.baddbmm`` computes all
S models, and its result (S, C_out, B * out) is already the next layer's layout.

Measured against the alternatives (forward + backward, 2-core AMD EPYC, one torch thread;
the machine was shared, so only ratios measured in one process are given, min of 20):

- one Conv1d layer, 32 channels, length 40, batch 128: 8 models one after another
  (oneDNN, as alone) 1.0; ``groups = S`` with models folded into channels (oneDNN)
  ~1.0-1.2x slower in backward; ``torch.func.vmap`` over ``functional_call`` ~1.0 (it
  lowers to the same grouped convolution); im2col + ``bmm`` 0.9-1.0x, and 0.65x at 128
  channels, length 10;
- the MNIST-1D CNN (width 32, batch 100, 3 conv layers + head), 8 models:
  one after another 1.0, grouped 0.9, vmap 1.0, per-model ``functional_call`` loop 1.0,
  im2col + ``bmm`` with autograd's slicing 0.37, with :class:`Im2col` below 0.3.

oneDNN's small convolutions run at 10-40 GFLOP/s here, below MKL's batched GEMM; and
autograd's slicing made the columns' backward several zero-filled copies, where
:class:`Im2col`'s backward adds the k^d shifted gradients into one zeroed tensor.

On a GPU the same code runs (``bmm`` on cuBLAS); a grouped cuDNN convolution may be
faster there for 2-D images. Untested on a device.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor


def out_size(n: int, k: int, stride: int, pad: int) -> int:
    """Output length of a convolution along one axis (no dilation)."""
    return (n + 2 * pad - k) // stride + 1


def _offsets(n: int, k: int, stride: int, pad: int) -> list[tuple[int, int, int]]:
    """For each kernel offset j along an axis of length n: the output positions
    ``[lo, hi)`` whose input ``t * stride + j - pad`` lies inside, and that first input."""
    m = out_size(n, k, stride, pad)
    out = []
    for j in range(k):
        lo = max(0, -(-(pad - j) // stride))  # ceil((pad - j) / stride)
        hi = max(lo, min(m, (n - 1 + pad - j) // stride + 1))
        out.append((lo, hi, lo * stride + j - pad))
    return out


def _src(lo: int, hi: int, start: int, stride: int) -> slice:
    return slice(start, start + (hi - lo - 1) * stride + 1, stride)


class Im2col(torch.autograd.Function):
    """x (S, C, B, *sp) -> columns (S, C, *k, B, *out), zero where the kernel reads the
    padding. Backward: the gradient of x, the k^d shifted column gradients added up."""

    @staticmethod
    def forward(ctx, x: Tensor, k: int, stride: int, pad: int) -> Tensor:
        S, C, B, *sp = x.shape
        outs = [out_size(n, k, stride, pad) for n in sp]
        ranges = [_offsets(n, k, stride, pad) for n in sp]
        cols = x.new_empty(S, C, *([k] * len(sp)), B, *outs)
        lead = (slice(None),) * 3  # S, C, B of x; of a column block after the offsets
        for offs in itertools.product(range(k), repeat=len(sp)):
            block = cols[(slice(None), slice(None), *offs)]  # (S, C, B, *out)
            dst, src = [], []
            for axis, j in enumerate(offs):
                lo, hi, start = ranges[axis][j]
                head = lead + (slice(None),) * axis
                if lo > 0:
                    block[(*head, slice(0, lo))].zero_()
                if hi < outs[axis]:
                    block[(*head, slice(hi, None))].zero_()
                dst.append(slice(lo, hi))
                src.append(_src(lo, hi, start, stride))
            if all(s.stop > s.start for s in dst):
                block[(*lead, *dst)].copy_(x[(*lead, *src)])
        ctx.geometry = (x.shape, k, stride, ranges)
        return cols

    @staticmethod
    def backward(ctx, grad: Tensor):
        shape, k, stride, ranges = ctx.geometry
        gx = grad.new_zeros(shape)
        lead = (slice(None),) * 3
        for offs in itertools.product(range(k), repeat=len(shape) - 3):
            dst, src = [], []
            for axis, j in enumerate(offs):
                lo, hi, start = ranges[axis][j]
                src.append(slice(lo, hi))
                dst.append(_src(lo, hi, start, stride))
            if all(s.stop > s.start for s in src):
                gx[(*lead, *dst)] += grad[(slice(None), slice(None), *offs, *lead[2:], *src)]
        return gx, None, None, None


def conv(x: Tensor, w: Tensor, b: Tensor | None, stride: int, pad: int) -> Tensor:
    """S convolutions: x (S, C, B, *sp), weights w (S, O, C, *k) as the conv layers store
    them, biases b (S, O) or None -> (S, O, B, *out)."""
    S, O, C, *ks = w.shape
    k, sp = ks[0], x.shape[3:]
    if k == 1 and stride == 1 and pad == 0:
        cols = x.reshape(S, C, -1)  # a 1x1 convolution is a product with x itself
        outs = list(sp)
    else:
        outs = [out_size(n, k, stride, pad) for n in sp]
        cols = Im2col.apply(x, k, stride, pad).reshape(S, C * k ** len(sp), -1)
    w2 = w.reshape(S, O, -1)
    y = torch.bmm(w2, cols) if b is None else torch.baddbmm(b.unsqueeze(2), w2, cols)
    return y.view(S, O, x.shape[2], *outs)

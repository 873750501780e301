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


def _blocks(shape, k: int, stride: int, ranges):
    """Per kernel offset: (the column block's index, x's strided positions it reads)."""
    lead = (slice(None),) * 3
    for offs in itertools.product(range(k), repeat=len(shape) - 3):
        cols = [slice(*ranges[a][j][:2]) for a, j in enumerate(offs)]
        xs = [_src(*ranges[a][j], stride) for a, j in enumerate(offs)]
        if all(c.stop > c.start for c in cols):
            yield (slice(None), slice(None), *offs, slice(None), *cols), (*lead, *xs)


class Buffers:
    """Column buffers kept from step to step: each convolution's columns (their padding
    zeroed once, when made) and the column gradients, one per shape (the backward runs
    one layer at a time). Fresh 8 MB temporaries each step cost a memset and page faults
    that made up ~6% of a 1-D ResNet's batched step here. Only while autograd records
    (training); evaluation passes allocate as usual."""

    def __init__(self) -> None:
        self.cols: dict[int, Tensor] = {}  # by op
        self.grads: dict[tuple, Tensor] = {}  # by shape

    def columns(self, op: int, shape: tuple, like: Tensor, pad: int) -> Tensor:
        buf = self.cols.get(op) if torch.is_grad_enabled() else None
        if buf is None or buf.shape != shape or buf.device != like.device:
            buf = like.new_zeros(shape) if pad else like.new_empty(shape)
            if torch.is_grad_enabled():
                self.cols[op] = buf
        return buf

    def grad(self, shape: tuple, like: Tensor) -> Tensor:
        buf = self.grads.get(shape)
        if buf is None or buf.device != like.device:
            buf = self.grads[shape] = like.new_empty(shape)
        return buf


#: where a layer's weight and bias gradients go: views of the flat gradient, and a scalar
#: leaf that requires grad (the parameters themselves are detached views, so without it
#: autograd would not record the layer)
Out = tuple[Tensor, Tensor | None, Tensor] | None


class Product(torch.autograd.Function):
    """``W @ X (+ b)`` for S models, W (S, O, K), X (S, K, N), b (S, O) or None, whose
    backward writes the weight and bias gradients into ``out``, views of the program's
    flat gradient (:mod:`regbench.batched.program`): no per-layer gradient tensors, and
    no copy of them into the flat gradient (``torch.bmm`` writes to a strided view at no
    cost). Used when every parameter of a program feeds such a product and the program
    is large enough for it to pay (:data:`regbench.batched.program.DIRECT_MIN`)."""

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, b: Tensor | None, out: Out, anchor: Tensor) -> Tensor:
        ctx.save_for_backward(x, w)
        ctx.out = out
        return torch.bmm(w, x) if b is None else torch.baddbmm(b.unsqueeze(2), w, x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, w = ctx.saved_tensors
        gw_out, gb_out, _ = ctx.out
        torch.bmm(grad, x.transpose(1, 2), out=gw_out)
        if gb_out is not None:
            torch.sum(grad, 2, out=gb_out)
        gx = torch.bmm(w.transpose(1, 2), grad) if ctx.needs_input_grad[0] else None
        return gx, None, None, None, None


def product(x: Tensor, w: Tensor, b: Tensor | None, out: Out = None) -> Tensor:
    """``W @ X (+ b)`` (S, O, N): through autograd, or with the gradients into ``out``."""
    if out is not None:
        return Product.apply(x, w, b, out, out[2])
    return torch.bmm(w, x) if b is None else torch.baddbmm(b.unsqueeze(2), w, x)


class _Conv(torch.autograd.Function):
    """S convolutions as im2col + one batched GEMM, with the backward written out:
    weight gradients from the saved columns (into ``out`` if given, as :class:`Product`),
    the input's as the column gradients (W^T @ grad) added back over the k^d shifts. The
    columns are a kept buffer, saved for backward: rewriting it before the backward ran
    fails (autograd's version check) instead of computing a wrong gradient."""

    @staticmethod
    def forward(ctx, x, w, b, stride, pad, op: int, buffers: Buffers, out: Out, anchor):
        S, O, C, *ks = w.shape
        k, (B, *sp) = ks[0], x.shape[2:]
        outs = [out_size(n, k, stride, pad) for n in sp]
        ranges = [_offsets(n, k, stride, pad) for n in sp]
        cols = buffers.columns(op, (S, C, *ks, B, *outs), x, pad)
        for dst, src in _blocks(x.shape, k, stride, ranges):
            cols[dst].copy_(x[src])
        flat = cols.view(S, C * k ** len(sp), -1)
        w2 = w.reshape(S, O, -1)
        y = torch.bmm(w2, flat) if b is None else torch.baddbmm(b.unsqueeze(2), w2, flat)
        ctx.save_for_backward(cols, w)
        ctx.geometry = (x.shape, k, stride, ranges, b is not None, buffers, out)
        return y.view(S, O, B, *outs)

    @staticmethod
    def backward(ctx, grad: Tensor):
        cols, w = ctx.saved_tensors
        shape, k, stride, ranges, bias, buffers, out = ctx.geometry
        S, O = w.shape[:2]
        g = grad.reshape(S, O, -1)
        flat = cols.view(S, -1, g.shape[2])
        gw = gb = None
        if out is not None:  # straight into the flat gradient
            torch.bmm(g, flat.transpose(1, 2), out=out[0])
            if out[1] is not None:
                torch.sum(g, 2, out=out[1])
        else:
            gw = torch.bmm(g, flat.transpose(1, 2)).view_as(w) if ctx.needs_input_grad[1] else None
            gb = g.sum(2) if bias and ctx.needs_input_grad[2] else None
        gx = None
        if ctx.needs_input_grad[0]:
            gcols = buffers.grad(tuple(cols.shape), g)
            torch.bmm(w.reshape(S, O, -1).transpose(1, 2), g, out=gcols.view_as(flat))
            gx = col2im(gcols, shape, k, stride, ranges)
        return gx, gw, gb, None, None, None, None, None, None


def col2im(gcols: Tensor, shape, k: int, stride: int, ranges) -> Tensor:
    """The gradient of x (S, C, B, *sp) from its columns' gradient: each kernel offset's
    block added back at the positions it read."""
    blocks = list(_blocks(shape, k, stride, ranges))
    # an offset that reads every position of x (the centre tap of a stride-1 'same'
    # convolution) starts the sum as a copy, sparing a memset and one addition pass
    full = next((i for i, (c, _) in enumerate(blocks) if gcols[c].shape[3:] == shape[3:]), None)
    if full is None:
        gx = gcols.new_zeros(shape)
    else:
        gx = gcols[blocks.pop(full)[0]].clone(memory_format=torch.contiguous_format)
    for c, xs in blocks:
        gx[xs] += gcols[c]
    return gx


def conv(
    x: Tensor,
    w: Tensor,
    b: Tensor | None,
    stride: int,
    pad: int,
    op: int,
    buffers: Buffers,
    out: Out = None,
) -> Tensor:
    """S convolutions: x (S, C, B, *sp), weights w (S, O, C, *k) as the conv layers store
    them, biases b (S, O) or None -> (S, O, B, *out). ``op`` names the layer's kept
    column buffer in ``buffers``; ``out``: where the weight (as (S, O, C * k^d)) and bias
    gradients go, or None (autograd's)."""
    S, O, C, *ks = w.shape
    if ks[0] == 1 and stride == 1 and pad == 0:  # a 1x1 convolution is a product with x
        y = product(x.reshape(S, C, -1), w.reshape(S, O, C), b, out)
        return y.view(S, O, *x.shape[2:])
    anchor = None if out is None else out[2]
    return _Conv.apply(x, w, b, stride, pad, op, buffers, out, anchor)

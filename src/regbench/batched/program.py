"""S built models as one stacked program: parameters ``[S, *shape]``, batched products.

Each model is built on its own by the project's builder (its own initialisation), then
its parameters are copied into stacked tensors whose leading axis is the model. Models
of different widths are zero-padded to the group's largest shape; ``mask`` says which
entries are real. A padded unit or channel has zero incoming weights, zero bias and zero
outgoing weights, so it adds an exact zero to every real one; its gradients are masked
to zero (:mod:`regbench.batched.loop`), so it stays zero for the whole run. BatchNorm
keeps a padded channel at zero (its affine parameters are padding too). Normalizations
that average over features (LayerNorm, GroupNorm) would see the padding, so their
signature carries the width: such models only batch with models of the same width.

The forward pass runs the ops of :mod:`regbench.batched.signature` (the leaves of an MLP,
residual MLP, 1-D CNN or ResNet in execution order) feature-major: activations are
(S, C, B, *spatial), models first, then features or channels, then samples (an MLP's are
(S, F, B)). A linear layer is ``W @ x`` with W as ``nn.Linear`` stores it, so no weight
or gradient is ever transposed, and the output layer's small dimension (10 classes) is
the GEMMs' row count, where MKL's batched GEMM is fastest (about 3.5x faster than as the
column count); per step this is 10-30% faster than batch-major on this CPU. A
convolution is one batched GEMM over im2col columns (:mod:`regbench.batched.conv`), whose
output is again (S, C_out, B, *out). BatchNorm sees the S models' channels as one
channel axis, (1, S * C, B * spatial): per channel over the batch and the positions,
exactly S separate BatchNorms. GroupNorm (and LayerNorm on conv nets, one group) is per
sample: (B, S * C, *spatial) with S * G groups is S models' GroupNorm(G, C) with their
own affine parameters. InstanceNorm, per (sample, channel) over the positions, is torch's
own reshaping to (1, S * C * B, positions).

Stochastic layers run as their own files define them (:mod:`regbench.reg.stacked`): a
noise op hands its stacked form each model's single-form shape, (B, C_s, *spatial), and
the move of the batch axis that takes the noise stacked batch-major (S, B, C, ...) to the
program's layout; the form draws each model's noise from that model's stream. A
per-batch DropPath (:class:`~regbench.reg.depth.StackedSkip`) says per model whether the
block runs this step: when no model keeps it, the branch is not run; otherwise a dropped
model's branch output is multiplied by 0, its BatchNorm layers in the branch keep their
running statistics, and :meth:`StackedNet.dropped_segments` tells the optimizer which of
its parameters sat out the step (as ``grad is None`` alone).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from regbench.batched.conv import Buffers, conv, product
from regbench.batched.signature import (
    CLOSE,
    FLATTEN,
    INPUTS,
    OPEN,
    POOL,
    SHORT,
    leaves,
    merge_signatures,
    signature,
)
from regbench.reg.stacked import NOISE, SKIP, per_model_tensor

#: Direct gradients (:meth:`StackedNet.use_direct_grads`) from this many flat-gradient
#: entries (S * P) up. They save the copy of every layer's gradient into the flat one but
#: add a Python autograd Function per linear layer; one thread of this 2-core AMD EPYC,
#: model_double_descent's MLP groups of 20 (10 seeds x 2 arms), ms per epoch direct vs
#: autograd, min of 5 interleaved: width 300 (S * P = 2.1M) 925 vs 976, 177 (0.8M) 412
#: vs 432, 104 (0.3M) 173 vs 176, 47 (94K) 92.5 vs 86.0, 60 models of width 21 158 vs 151.
DIRECT_MIN = 500_000


def _stack(tensors: Sequence[Tensor], device) -> tuple[Tensor, Tensor | None]:
    """Zero-padded stack ``[S, *max_shape]`` and its 0/1 mask (None if no padding)."""
    shape = [max(t.shape[d] for t in tensors) for d in range(tensors[0].dim())]
    out = torch.zeros(len(tensors), *shape, dtype=tensors[0].dtype, device=device)
    mask = torch.zeros_like(out)
    for s, t in enumerate(tensors):
        idx = (s, *[slice(0, n) for n in t.shape])
        out[idx] = t.detach().to(device)
        mask[idx] = 1
    return out, (None if bool(mask.all()) else mask)


@dataclass(eq=False)
class Block:
    """A residual block of the program: its ops ``open``..``close`` (indices), its DropPath
    op, and the parameter segments of its branch ``[seg_lo, seg_hi)``."""

    open: int
    drop: int = -1
    close: int = -1
    seg_lo: int = 0
    seg_hi: int = 0
    keep: list[bool] | None = None  # this step's per-batch decisions (None: no skipping)
    keep_t: Tensor | None = field(default=None, repr=False)  # the same as 0/1 on the device


def _first_width(per_model: list[list]) -> list[int]:
    """Each model's input features or channels: the first weight layer's fan-in."""
    out = []
    for ls in per_model:
        m = next(m for m in ls if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d))
        out.append(m.in_features if isinstance(m, nn.Linear) else m.in_channels)
    return out


class StackedNet:
    """The stacked parameters, buffers and ops of S models with one merged signature."""

    def __init__(self, models: Sequence[nn.Module], device) -> None:
        sig = merge_signatures([signature(m) for m in models])
        if sig is None:
            raise ValueError("models do not share one batched signature")
        self.models, self.device, self.tokens = list(models), torch.device(device), sig
        per_model = [leaves(m) for m in models]
        self._stacked: list[tuple[Tensor, Tensor | None]] = []
        self.decay_free: list[bool] = []  # 1-D per model: biases, norm parameters
        self.buffers: dict[tuple[int, str], Tensor] = {}
        self.ops: list[tuple[str, dict]] = []
        self.blocks: list[Block] = []
        self.buffers_conv = Buffers()
        # each model's features or channels where an op sees its input (as alone)
        chans = [1] * len(models) if sig[0] == "in:signal" else _first_width(per_model)
        opened: list[tuple[Block, list[int]]] = []  # open blocks and their input widths
        for i, tok in enumerate(sig):
            mods = [leaf[i] for leaf in per_model]
            op = self._op(i, tok, mods)
            op["chans"] = chans
            if opened:
                op["block"] = opened[-1][0]
            if tok == OPEN:
                block = Block(open=i, seg_lo=len(self._stacked))
                self.blocks.append(block)
                op["block"] = block
                opened.append((block, chans))
            elif tok.startswith((NOISE, SKIP)) and opened and sig[i + 1] in (SHORT, CLOSE):
                opened[-1][0].drop = i  # the DropPath slot closing a branch
            elif tok == SHORT:  # the shortcut maps the block's input to the branch's width
                chans = opened[-1][1]
            elif tok == CLOSE:
                block, _ = opened.pop()
                block.close, block.seg_hi = i, len(self._stacked)
            elif tok.startswith(("linear", "conv")):
                chans = [
                    m.out_features if isinstance(m, nn.Linear) else m.out_channels for m in mods
                ]
            elif tok == FLATTEN:  # the next weight layer's fan-in: c * positions
                nxt = next(j for j in range(i + 1, len(sig)) if sig[j].startswith("linear"))
                chans = [leaf[nxt].in_features for leaf in per_model]
            elif tok.startswith("pad_shortcut"):
                chans = [c + m.extra for c, m in zip(chans, mods, strict=True)]
            self.ops.append((tok, op))
        for _, op in self.ops:
            if "block" in op and op["block"].drop < 0:
                del op["block"]
        self.blocks = [b for b in self.blocks if b.drop >= 0]
        self.skips = [b for b in self.blocks if self.tokens[b.drop].startswith(SKIP)]
        self._flatten()
        self.direct, self.grad, self.grad_views = False, None, None

    def _flatten(self) -> None:
        """All parameters of a model in one row of ``flat`` (S, P): the optimizer, the
        gradient masks and clipping are then a few ops per step, whatever the depth.
        ``params`` are (S, *shape) views of it, made again at every forward."""
        S = len(self.models)
        self.shapes = [t.shape[1:] for t, _ in self._stacked]
        self.sizes = [t[0].numel() for t, _ in self._stacked]
        self.flat = torch.cat([t.reshape(S, -1) for t, _ in self._stacked], 1).requires_grad_()
        masks = [torch.ones_like(t) if m is None else m for t, m in self._stacked]
        padded = any(m is not None for _, m in self._stacked)
        self.mask = torch.cat([m.reshape(S, -1) for m in masks], 1) if padded else None
        free = [
            torch.full((n,), f, device=self.device)
            for n, f in zip(self.sizes, self.decay_free, strict=True)
        ]
        self.decay_free_flat = torch.cat(free).bool()  # (P,)
        self._stacked = []
        self.params = self.views(self.flat)

    def direct_ok(self) -> bool:
        """Whether every parameter feeds a linear or conv product (no DropConnect mask,
        no norm's affine parameters) and every block runs every step (no skips)."""
        owners: set[int] = set()
        for tok, op in self.ops:
            if tok.startswith(("linear", "conv")) and "+" not in tok:
                owners |= {op["w"], op["b"]} - {None}
        return not self.skips and owners == set(range(len(self.sizes)))

    def use_direct_grads(self, on: bool, min_entries: int = DIRECT_MIN) -> None:
        """Direct gradients (when :meth:`direct_ok` and ``on``, i.e. no loss term reads the
        parameters, and the flat gradient has at least ``min_entries``): the products
        write their weight and bias gradients straight into ``grad`` (S, P)
        (:class:`~regbench.batched.conv.Product`), the parameters are views of the
        detached ``flat``, and after the backward ``grad`` is the step's gradient, every
        entry written. Otherwise autograd's: per-layer gradients concatenated into
        ``flat.grad`` (SplitBackward's copy). See :data:`DIRECT_MIN` for where each pays."""
        big = self.flat.numel() >= min_entries
        self.direct = on and big and self.direct_ok()
        self.grad = torch.zeros_like(self.flat.detach()) if self.direct else None
        self.grad_views = self.views(self.grad) if self.direct else None
        self.anchor = torch.zeros((), device=self.device, requires_grad=True)

    def _out(self, op: dict):
        """Where a product's weight and bias gradients go (direct mode), or None."""
        if not self.direct:
            return None
        w = self.grad_views[op["w"]]
        b = None if op["b"] is None else self.grad_views[op["b"]]
        return w.view(w.shape[0], w.shape[1], -1), b, self.anchor

    def backward(self, loss: Tensor) -> None:
        """The gradient of ``loss`` (a scalar) with respect to every model's parameters,
        in ``flat.grad`` (S, P): through autograd, or written by the products (direct)."""
        self.flat.grad = None
        loss.backward()
        if self.direct:  # every entry was written by the products (use_direct_grads)
            self.flat.grad = self.grad

    def views(self, flat: Tensor) -> list[Tensor]:
        S = flat.shape[0]
        chunks = flat.split(self.sizes, 1)
        return [c.view(S, *shape) for c, shape in zip(chunks, self.shapes, strict=True)]

    def _param(self, tensors: Sequence[Tensor]) -> int:
        self._stacked.append(_stack(tensors, self.device))
        self.decay_free.append(tensors[0].dim() <= 1)
        return len(self._stacked) - 1

    @staticmethod
    def _form(mods: Sequence[nn.Module]):
        """The stacked form of one noise or skip slot (its class's ``stacked``); None when
        every model's slot is empty."""
        real = next((m for m in mods if not isinstance(m, nn.Identity)), None)
        return None if real is None else type(real).stacked(mods)

    def _op(self, i: int, tok: str, mods: Sequence[nn.Module]) -> dict:
        m0 = mods[0]
        if tok.startswith(("linear", "conv")):
            op = {"w": self._param([m.weight for m in mods])}
            op["b"] = self._param([m.bias for m in mods]) if m0.bias is not None else None
            if tok.startswith("conv"):
                op["stride"], op["pad"] = m0.stride[0], m0.padding[0]
            if "+" in tok:  # weight noise (DropConnect): masks of the weights (S, out, in)
                op["mods"], op["dc"] = list(mods), self._form(mods)
                op["shapes"] = [tuple(m.weight.shape) for m in mods]
            return op
        if tok.startswith(("bn", "ln", "gn", "in(")):
            affine = getattr(m0, "affine", getattr(m0, "elementwise_affine", False))
            op = {"mod": m0, "w": None, "b": None}
            if affine:
                op["w"] = self._param([m.weight for m in mods])
                op["b"] = self._param([m.bias for m in mods])
            if tok.startswith("bn") and m0.track_running_stats:
                for name in ("running_mean", "running_var"):
                    stacked, _ = _stack([getattr(m, name) for m in mods], self.device)
                    self.buffers[(i, name)] = stacked
                op["count"] = [int(m.num_batches_tracked) for m in mods]
            return op
        if tok.startswith("act:"):
            return {"mod": m0}
        if tok.startswith((NOISE, SKIP)):
            return {"mods": list(mods), "form": self._form(mods)}
        if tok.startswith("pad_shortcut"):
            return {"stride": m0.stride}
        return {}

    # --- forward ----------------------------------------------------------------------
    def forward(self, x: Tensor, training: bool) -> Tensor:
        """(S, B, *input) -> logits (S, B, K) (a view of the (S, K, B) result)."""
        # fresh views: autograd sees this step's values (direct: the gradients go elsewhere)
        self.params = self.views(self.flat.detach() if self.direct else self.flat)
        skips = []  # inputs (then branch outputs) of the open residual blocks
        ops, i = self.ops, 0
        for block in self.skips:
            block.keep = block.keep_t = None
        while i < len(ops):
            tok, op = ops[i]
            if tok in INPUTS:
                x = _input(tok, x)
            elif tok == OPEN:
                if training and op.get("block") in self.skips and self._skipped(op["block"]):
                    i = op["block"].close + 1  # no model runs this block's branch
                    continue
                skips.append(x)
            elif tok == SHORT:  # the branch is done: its output waits, the shortcut runs
                skips[-1], x = x, skips[-1]
            elif tok == CLOSE:
                x = skips.pop() + x  # shortcut(x) + DropPath(branch(x))
            else:
                x = self._apply(i, tok, op, x, training)
            i += 1
        return x.transpose(1, 2)

    def _skipped(self, block: Block) -> bool:
        """Draw the block's per-batch decisions (if it has them); True if every model
        drops it."""
        form = self.ops[block.drop][1]["form"]
        keep = [True] * len(self.models) if form is None else form.keeps()
        if all(keep):
            return False
        block.keep = keep
        if any(keep):
            block.keep_t = per_model_tensor([float(k) for k in keep], self.device)
        return not any(keep)

    def _apply(self, i: int, tok: str, op: dict, x: Tensor, training: bool) -> Tensor:
        p = self.params
        if tok.startswith("linear"):
            w = p[op["w"]]  # (S, out, in), as nn.Linear
            if training and op.get("dc") is not None:  # a weight mask per model and pass
                w = op["dc"](w, training, op["shapes"])
            b = None if op["b"] is None else p[op["b"]]
            return product(x, w, b, self._out(op))  # (S, out, B)
        if tok.startswith("conv"):
            b = None if op["b"] is None else p[op["b"]]
            out = self._out(op)
            return conv(x, p[op["w"]], b, op["stride"], op["pad"], i, self.buffers_conv, out)
        if tok.startswith("act:"):
            return op["mod"](x)
        if tok.startswith(NOISE):
            if op["form"] is None:
                return x
            B, sp = x.shape[2], tuple(x.shape[3:])  # each model's single form: (B, C_s, *sp)
            shapes = [(B, c, *sp) for c in op["chans"]]
            return op["form"](x, training, shapes, _feature_major)
        if tok.startswith(SKIP):
            if op["form"] is None:
                return x
            return op["form"](x, training, op["block"].keep_t if training else None)
        if tok.startswith(("bn", "ln", "gn", "in(")):
            return self._norm(i, tok, op, x, training)
        if tok == POOL:
            return x.flatten(3).mean(3)  # (S, C, B, *sp) -> (S, C, B)
        if tok == FLATTEN:  # each sample's (C, *sp) as c * positions + l: (S, C * sp, B)
            return x.movedim(2, -1).reshape(x.shape[0], -1, x.shape[2])
        if tok.startswith("pad_shortcut"):
            return self._pad_shortcut(i, op, x)
        return x

    def _pad_shortcut(self, i: int, op: dict, x: Tensor) -> Tensor:
        """Option A: every stride-th position, zero channels appended up to the group's
        widest output (each model's own zero channels, then its padding)."""
        s, d = op["stride"], x.dim() - 3
        x = x[(slice(None),) * 3 + (slice(None, None, s),) * d]
        extra = max(self.ops[i + 1][1]["chans"]) - x.shape[1]
        return F.pad(x, (0, 0) * (d + 1) + (0, extra))

    def _norm(self, i: int, tok: str, op: dict, x: Tensor, training: bool) -> Tensor:
        mod, S, C, B = op["mod"], *x.shape[:3]
        w = None if op["w"] is None else self.params[op["w"]]  # (S, C)
        b = None if op["b"] is None else self.params[op["b"]]
        if tok.startswith("bn"):
            return self._batch_norm(i, op, x, w, b, training)
        if tok.startswith("in("):  # per (model, channel, sample) over the positions
            rows = x.reshape(1, S * C * B, -1)
            rep = None if w is None else (w.unsqueeze(2).expand(S, C, B).reshape(-1),)
            out = F.instance_norm(
                rows,
                weight=None if rep is None else rep[0],
                bias=None if b is None else b.unsqueeze(2).expand(S, C, B).reshape(-1),
                eps=mod.eps,
            )
            return out.view_as(x)
        if tok.startswith("ln"):  # MLPs: each sample's features, (S, B, F)
            out = F.layer_norm(x.transpose(1, 2), (C,), None, None, mod.eps).transpose(1, 2)
            return out if w is None else out * w.unsqueeze(2) + b.unsqueeze(2)
        # group norm per sample: (B, S * C, *sp) with S * G groups, affine fused as alone
        rows = x.movedim(2, 0).reshape(B, S * C, *x.shape[3:])
        out = F.group_norm(
            rows,
            S * mod.num_groups,
            None if w is None else w.reshape(-1),
            None if b is None else b.reshape(-1),
            mod.eps,
        )
        return out.view(B, S, C, *x.shape[3:]).movedim(0, 2)

    def _batch_norm(self, i: int, op: dict, x: Tensor, w, b, training: bool) -> Tensor:
        """Channels of all models as one axis: (1, S * C, B * positions); running stats in
        place. In a block some models drop this step, theirs are kept as they were."""
        mod, S, C = op["mod"], x.shape[0], x.shape[1]
        rm, rv = self.buffers.get((i, "running_mean")), self.buffers.get((i, "running_var"))
        use_batch = training or rm is None
        block = op.get("block")
        keep = block.keep if (training and block is not None) else None
        momentum = mod.momentum
        if momentum is None:  # cumulative average, as nn.BatchNorm (the same count for all)
            counts = {c for c, k in zip(op["count"], keep or [True] * S, strict=True) if k}
            if len(counts) != 1:
                raise ValueError("BatchNorm with momentum=None in a per-batch DropPath branch")
            momentum = 1.0 / (counts.pop() + 1)
        stats = rm, rv
        if keep is not None and rm is not None:  # updated on copies, kept per model below
            stats = rm.clone(), rv.clone()
        out = F.batch_norm(
            x.reshape(1, S * C, -1),
            None if rm is None else stats[0].view(-1),
            None if rv is None else stats[1].view(-1),
            None if w is None else w.reshape(-1),
            None if b is None else b.reshape(-1),
            use_batch,
            momentum,
            mod.eps,
        )
        if training and "count" in op:
            ran = keep or [True] * S
            op["count"] = [c + 1 if k else c for c, k in zip(op["count"], ran, strict=True)]
        if stats[0] is not rm:  # a dropped model's BN did not run: its stats stay
            kept = block.keep_t.view(S, 1).bool()
            rm.copy_(torch.where(kept, stats[0], rm))
            rv.copy_(torch.where(kept, stats[1], rv))
        return out.view_as(x)

    def dropped_segments(self) -> list[tuple[int, int, list[int]]]:
        """This step's per-batch drops: ``(seg_lo, seg_hi, models)`` for each block that
        some models dropped, its parameter segments and those models' rows."""
        out = []
        for block in self.skips:
            if block.keep is not None:
                models = [s for s, k in enumerate(block.keep) if not k]
                out.append((block.seg_lo, block.seg_hi, models))
        return out

    # --- back to the models -----------------------------------------------------------
    @torch.no_grad()
    def unstack(self) -> None:
        """Copy the trained parameters and buffers back into each (remaining) model."""
        params = self.views(self.flat.detach())
        for s, model in enumerate(self.models):
            ls = leaves(model)
            for i, (_, op) in enumerate(self.ops):
                m = ls[i]
                for key, name in (("w", "weight"), ("b", "bias")):
                    if op.get(key) is not None:
                        t = getattr(m, name)
                        t.copy_(params[op[key]][s][tuple(slice(0, n) for n in t.shape)])
                for name in ("running_mean", "running_var"):
                    if (i, name) in self.buffers:
                        t = getattr(m, name)
                        t.copy_(self.buffers[(i, name)][s][: t.shape[0]])
                if "count" in op and m.num_batches_tracked is not None:
                    m.num_batches_tracked.fill_(op["count"][s])

    def select(self, keep: Sequence[int]) -> None:
        """Keep only models ``keep`` (e.g. drop diverged ones) in every stacked tensor."""
        idx = torch.tensor(list(keep), device=self.device)
        self.flat = self.flat.detach()[idx].requires_grad_(True)
        self.mask = None if self.mask is None else self.mask[idx]
        self.params = self.views(self.flat)
        self.buffers = {k: v[idx] for k, v in self.buffers.items()}
        for _, op in self.ops:
            for key in ("mods", "chans", "shapes", "count"):
                if key in op:
                    op[key] = [op[key][i] for i in keep]
            if "form" in op:
                op["form"] = self._form(op["mods"])
            if "dc" in op:
                op["dc"] = self._form(op["mods"])
        self.models = [self.models[i] for i in keep]
        self.use_direct_grads(self.direct)


def _input(tok: str, x: Tensor) -> Tensor:
    """A batch (S, B, *input) as the first activation (S, C, B, *spatial)."""
    S, B = x.shape[:2]
    if tok == "in:flat":  # (S, F, B)
        return x.flatten(2).transpose(1, 2)
    if tok == "in:signal":  # (B, L) signals as one channel: (S, 1, B, L)
        return x.reshape(S, B, 1, -1).transpose(1, 2)
    return x.transpose(1, 2)  # (S, B, C, *sp) -> (S, C, B, *sp)


def _feature_major(noise: Tensor) -> Tensor:
    """Noise stacked batch-major (S, B, C, *sp) as the program's (S, C, B, *sp)."""
    return noise.movedim(1, 2)

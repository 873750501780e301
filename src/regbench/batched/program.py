"""S built MLPs as one stacked program: parameters ``[S, *shape]``, batched matmuls.

Each model is built on its own by the project's builder (its own initialisation), then
its parameters are copied into stacked tensors whose leading axis is the model. Models
of different widths are zero-padded to the group's largest shape; ``mask`` says which
entries are real. A padded unit has zero incoming weights, zero bias and zero outgoing
weights, so it adds an exact zero to every real unit; its gradients are masked to zero
(:mod:`regbench.batched.loop`), so it stays zero for the whole run. Normalizations that
average over features (LayerNorm, GroupNorm) would see the padding, so their signature
carries the width: such models only batch with models of the same width.

The forward pass runs the ops of :mod:`regbench.batched.signature` (the leaves of an MLP
or residual MLP in execution order) feature-major, on (S, features, B) tensors: a linear
layer is ``W @ x`` with W as ``nn.Linear`` stores it, so no weight or gradient is ever
transposed, and the output layer's small dimension (10 classes) is the GEMMs' row count,
where MKL's batched GEMM is fastest (about 3.5x faster than as the column count).
Per step this is 10-30% faster than batch-major on this CPU.

Stochastic layers run as their own files define them (:mod:`regbench.reg.stacked`): a
noise op hands its stacked form each model's single-form shape, (B, width_s), and the
transpose that takes the noise stacked batch-major (S, B, width) to the program's
feature-major layout; the form draws each model's noise from that model's stream.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from regbench.batched.signature import CLOSE, OPEN, leaves, merge_signatures, signature
from regbench.reg.stacked import NOISE


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


class StackedMLP:
    """The stacked parameters, buffers and ops of S MLPs with one merged signature."""

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
        # each model's feature count where an op sees its input (its single-form width)
        widths = [
            next(m for m in leaf if isinstance(m, nn.Linear)).in_features for leaf in per_model
        ]
        for i, tok in enumerate(sig):
            mods = [leaf[i] for leaf in per_model]
            op = self._op(i, tok, mods)
            if tok.startswith(NOISE):
                op["widths"] = widths
            if tok.startswith("linear"):
                widths = [m.out_features for m in mods]
            self.ops.append((tok, op))
        self.n_batches = 0  # BN's num_batches_tracked (all models step together)
        self._flatten()

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

    def views(self, flat: Tensor) -> list[Tensor]:
        S = flat.shape[0]
        chunks = flat.split(self.sizes, 1)
        return [c.view(S, *shape) for c, shape in zip(chunks, self.shapes, strict=True)]

    def _param(self, tensors: Sequence[Tensor]) -> int:
        self._stacked.append(_stack(tensors, self.device))
        self.decay_free.append(tensors[0].dim() <= 1)
        return len(self._stacked) - 1

    @staticmethod
    def _noise(mods: Sequence[nn.Module]):
        """The stacked form of one noise slot (its class's ``stacked``); None when every
        model's slot is empty."""
        real = next((m for m in mods if not isinstance(m, nn.Identity)), None)
        return None if real is None else type(real).stacked(mods)

    def _op(self, i: int, tok: str, mods: Sequence[nn.Module]) -> dict:
        m0 = mods[0]
        if tok.startswith("linear"):
            op = {"w": self._param([m.weight for m in mods])}
            op["b"] = self._param([m.bias for m in mods]) if m0.bias is not None else None
            if "+" in tok:  # weight noise (DropConnect): masks of the weights (S, out, in)
                op["mods"], op["dc"] = list(mods), self._noise(mods)
                op["shapes"] = [tuple(m.weight.shape) for m in mods]
            return op
        if tok.startswith(("bn", "ln", "gn")):
            affine = getattr(m0, "affine", getattr(m0, "elementwise_affine", False))
            op = {"mod": m0, "w": None, "b": None}
            if affine:
                op["w"] = self._param([m.weight for m in mods])
                op["b"] = self._param([m.bias for m in mods])
            if tok.startswith("bn") and m0.track_running_stats:
                for name in ("running_mean", "running_var"):
                    stacked, _ = _stack([getattr(m, name) for m in mods], self.device)
                    self.buffers[(i, name)] = stacked
            return op
        if tok.startswith("act:"):
            return {"mod": m0}
        if tok.startswith(NOISE):
            return {"mods": list(mods), "form": self._noise(mods)}
        return {}

    # --- forward ----------------------------------------------------------------------
    def forward(self, x: Tensor, training: bool) -> Tensor:
        """(S, B, *input) -> logits (S, B, K) (a view of the (S, K, B) result)."""
        x = x.flatten(2).transpose(1, 2)  # (S, F, B), feature-major
        self.params = self.views(self.flat)  # fresh views: autograd sees this step's values
        skips = []  # inputs of the open residual blocks
        for i, (tok, op) in enumerate(self.ops):
            if tok == OPEN:
                skips.append(x)
            elif tok == CLOSE:
                x = skips.pop() + x  # x + DropPath(branch(x))
            else:
                x = self._apply(i, tok, op, x, training)
        if training and any(t.startswith("bn") for t in self.tokens):
            self.n_batches += 1
        return x.transpose(1, 2)

    def _apply(self, i: int, tok: str, op: dict, x: Tensor, training: bool) -> Tensor:
        p = self.params
        if tok.startswith("linear"):
            w = p[op["w"]]  # (S, out, in), as nn.Linear
            if training and op.get("dc") is not None:  # a weight mask per model and pass
                w = op["dc"](w, training, op["shapes"])
            if op["b"] is None:
                return torch.bmm(w, x)
            return torch.baddbmm(p[op["b"]].unsqueeze(2), w, x)  # (S, out, B)
        if tok.startswith("act:"):
            return op["mod"](x)
        if tok.startswith(NOISE):
            if op["form"] is None:
                return x
            B = x.shape[2]  # each model's single form sees (B, width_s); x is (S, F, B)
            return op["form"](x, training, [(B, w) for w in op["widths"]], _feature_major)
        if tok.startswith(("bn", "ln", "gn")):
            return self._norm(i, tok, op, x, training)
        return x

    def _norm(self, i: int, tok: str, op: dict, x: Tensor, training: bool) -> Tensor:
        mod, S, H, B = op["mod"], *x.shape
        w = None if op["w"] is None else self.params[op["w"]]
        b = None if op["b"] is None else self.params[op["b"]]
        if tok.startswith("bn"):
            # Features of all models as channels: (1, S*H, B); BN is per feature over the
            # batch, so this is exactly S separate BatchNorms (running stats in place).
            rm, rv = self.buffers.get((i, "running_mean")), self.buffers.get((i, "running_var"))
            use_batch = training or rm is None
            momentum = mod.momentum
            if momentum is None:  # cumulative average, as nn.BatchNorm1d
                momentum = 1.0 / (self.n_batches + 1)
            out = F.batch_norm(
                x.reshape(1, S * H, B),
                None if rm is None else rm.view(-1),
                None if rv is None else rv.view(-1),
                None if w is None else w.reshape(-1),
                None if b is None else b.reshape(-1),
                use_batch,
                momentum,
                mod.eps,
            )
            return out.view(S, H, B)
        rows = x.transpose(1, 2)  # (S, B, H): LN and GN normalise each sample's features
        if tok.startswith("ln"):
            out = F.layer_norm(rows, (H,), None, None, mod.eps).transpose(1, 2)
        else:  # group norm: every (model, sample) row normalised over its groups
            out = F.group_norm(rows.reshape(S * B, H), mod.num_groups, None, None, mod.eps)
            out = out.view(S, B, H).transpose(1, 2)
        return out if w is None else out * w.unsqueeze(2) + b.unsqueeze(2)

    # --- back to the models -----------------------------------------------------------
    @torch.no_grad()
    def unstack(self) -> None:
        """Copy the trained parameters and buffers back into each (remaining) model."""
        params = self.views(self.flat.detach())
        for s, model in enumerate(self.models):
            ls = leaves(model)
            for i, (tok, op) in enumerate(self.ops):
                m = ls[i]
                for key, name in (("w", "weight"), ("b", "bias")):
                    if op.get(key) is not None:
                        t = getattr(m, name)
                        t.copy_(params[op[key]][s][tuple(slice(0, n) for n in t.shape)])
                for name in ("running_mean", "running_var"):
                    if (i, name) in self.buffers:
                        t = getattr(m, name)
                        t.copy_(self.buffers[(i, name)][s][: t.shape[0]])
                if tok.startswith("bn") and m.num_batches_tracked is not None:
                    m.num_batches_tracked.fill_(self.n_batches)

    def select(self, keep: Sequence[int]) -> None:
        """Keep only models ``keep`` (e.g. drop diverged ones) in every stacked tensor."""
        idx = torch.tensor(list(keep), device=self.device)
        self.flat = self.flat.detach()[idx].requires_grad_(True)
        self.mask = None if self.mask is None else self.mask[idx]
        self.params = self.views(self.flat)
        self.buffers = {k: v[idx] for k, v in self.buffers.items()}
        for _, op in self.ops:
            for key in ("mods", "widths", "shapes"):
                if key in op:
                    op[key] = [op[key][i] for i in keep]
            if "form" in op:
                op["form"] = self._noise(op["mods"])
            if "dc" in op:
                op["dc"] = self._noise(op["mods"])
        self.models = [self.models[i] for i in keep]


def _feature_major(noise: Tensor) -> Tensor:
    """Noise stacked batch-major (S, B, F) as the program's (S, F, B)."""
    return noise.transpose(1, 2)

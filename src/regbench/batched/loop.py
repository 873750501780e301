"""The training loop of a batched group: a plain PyTorch loop over stacked models.

It does per model what :class:`~regbench.module.RegModule` under Lightning does for one:
the same mini-batches in the same order (each model's own ``TensorBatches.order``), the
same step counter on every model's clock (so each draws its own masks, augmentations
and pairings at the same counters as alone: docs/ARCHITECTURE.md, "Randomness"), the same
loss (cross-entropy plus the loss terms), one optimizer step per mini-batch followed by
the constraints, the epoch's scheduler step, validation every
``check_val_every_n_epoch`` epochs, the test at the end, with the same epoch means. The
regularizers run as their stacked forms, built from each model's own objects
(:mod:`regbench.reg.stacked`). Image batches (uint8) are normalised on the device by the
data module's own ``normalize``, as alone. A model whose ``train/loss`` is not finite at an
epoch's end fails with the message the module raises, and leaves the group; the others go
on.

Per-batch stochastic depth leaves a dropped block's parameters out of the step alone
(``grad`` None); here every model's branch ran, so the step's ``touched`` mask tells the
optimizer which entries sat out: those of the blocks a model dropped, unless a loss term
reads them (then they have a gradient alone too; which parameters each loss term reads
is asked of autograd once, :func:`penalty_segments`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from regbench.batched.optim import Schedules, StackedOptimizer, clip_grad_norms
from regbench.batched.plan import Member
from regbench.batched.program import StackedNet
from regbench.data.batches import TensorBatches, limit_batches
from regbench.streams import TRAIN

Report = Callable[[int, dict[str, float], int], None]  # (member index, metrics, epoch)
Fail = Callable[[int, BaseException], None]
EVAL_BATCH = 1000  # the data module's eval batch size
#: trainer.precision values a group runs in (plan.py lets only these batch)
PRECISIONS = {
    "32-true": torch.float32,
    "32": torch.float32,
    "64-true": torch.float64,
    "64": torch.float64,
}


@dataclass
class Stacked:
    """Per-model tensors of one split: x (S, N, *shape), y (S, N). A ``shared`` x is one
    copy (1, N, *shape) that every model reads (the same inputs, e.g. seeds and label
    noise levels of one data set)."""

    x: Tensor
    y: Tensor

    @property
    def shared(self) -> bool:
        return self.x.shape[0] == 1

    def per_model(self) -> Tensor:
        """x as (S, N, *shape): a view of the one copy when shared."""
        return self.x.expand(self.y.shape[0], *self.x.shape[1:])

    @classmethod
    def of(
        cls, members: Sequence[Member], split: str, device, dtype=torch.float32, share=False
    ) -> Stacked:
        """As stored, floats in the run's precision (uint8 images stay uint8 until a
        batch is normalised); with ``share``, one x when every member's is equal."""
        xs = [getattr(m.splits, f"x_{split}") for m in members]
        ys = [getattr(m.splits, f"y_{split}") for m in members]
        shared = share and all(x is xs[0] or torch.equal(x, xs[0]) for x in xs[1:])
        x = torch.stack(xs[:1] if shared else xs).to(device)
        x = x.to(dtype) if x.is_floating_point() else x
        return cls(x, torch.stack(ys).to(device))

    def select(self, idx: Tensor) -> Stacked:
        return Stacked(self.x if self.shared else self.x[idx], self.y[idx])


@dataclass
class Weights:
    """The stacked parameters (S, *shape) a constraint projects, detached from autograd."""

    params: list[Tensor]


def losses(logits: Tensor, target: Tensor) -> Tensor:
    """Per-model mean cross-entropy (S,) of logits (S, B, K) against class indices (S, B)
    or probabilities (S, B, K) (mixup's), as ``F.cross_entropy`` computes it alone."""
    # classes on dim 1, (S, K, B): PyTorch's CPU log-softmax over a last dim of 10
    # classes runs ~4x slower than over a strided dim, vectorised along the batch
    if target.dim() == 3:
        target = target.transpose(1, 2)
    return F.cross_entropy(logits.transpose(1, 2), target, reduction="none").mean(1)


def predictions(logits: Tensor) -> Tensor:
    """argmax over classes of logits (S, B, K), the first on ties as ``argmax``. On the
    forward's (S, K, B) layout ``max(1).indices`` is ~15x faster than ``argmax`` on CPU."""
    return logits.transpose(1, 2).max(1).indices


def gather_rows(t: Tensor, perm: Tensor, rows: Tensor, out: Tensor | None = None) -> Tensor:
    """``t[rows, perm]`` for t (S, N, ...) and perm (S, N): each model's samples in its
    own order, as one ``index_select`` on the flattened rows (~3x faster than advanced
    indexing on two dimensions), into ``out`` if given (perm's shape + ``t``'s rest): an
    epoch's copy of the training set is tens of MB, and a fresh one each epoch costs its
    page faults, 3.5x the copy itself (64 models of MNIST-1D, 41 MB: 44 ms fresh, 13 ms
    into a kept buffer, one thread of this 2-core AMD EPYC). A t of one row (1, N, ...)
    is shared: every model's order reads it."""
    S, N = perm.shape
    idx = (perm if t.shape[0] == 1 else perm + rows * N).view(-1)
    flat_out = None if out is None else out.view(S * N, *t.shape[2:])
    flat = torch.index_select(t.reshape(-1, *t.shape[2:]), 0, idx, out=flat_out)
    return flat.view(S, N, *t.shape[2:])


def _identity(x: Tensor) -> Tensor:
    return x


@torch.no_grad()
def evaluate(prog: StackedNet, data: Stacked, batch_size: int, prep=_identity) -> dict[str, Tensor]:
    """Eval-mode loss and accuracy per model, as the module's epoch means."""
    S, N = data.y.shape
    sums = torch.zeros(S, 2, device=data.y.device)
    for i in range(0, N, batch_size):
        x, y = prep(data.x[:, i : i + batch_size]), data.y[:, i : i + batch_size]
        logits = prog.forward(x, training=False)
        acc = (predictions(logits) == y).float().mean(1)
        sums += torch.stack([losses(logits, y), acc], 1) * y.shape[1]
    means = sums / max(N, 1)
    return {"loss": means[:, 0], "acc": means[:, 1]}


class GroupLoop:
    def __init__(self, members: Sequence[Member], device) -> None:
        self.members, self.device = list(members), torch.device(device)
        self.alive = list(range(len(members)))  # original indices of the models still training
        cfg0 = members[0].cfg
        self.cfg0, self.epochs = cfg0, int(cfg0.trainer.max_epochs)
        # trainer.precision: 32-true, or 64-true (Lightning's DoublePrecision: the model and
        # the float inputs in float64)
        self.dtype = PRECISIONS[str(cfg0.trainer.precision)]
        for m in members:
            m.model.to(self.dtype)
        self.prog = StackedNet([m.model for m in members], self.device)
        # uint8 images: the data module's normalisation (per channel, broadcast over the
        # model axis); every member reads the same data set, so the same statistics
        prep = members[0].prep or _identity
        self.prep = prep if self.dtype == torch.float32 else lambda x: prep(x).to(self.dtype)
        cfgs = [m.cfg for m in members]
        self.opt = StackedOptimizer(self.prog.flat, self.prog.decay_free_flat, cfgs)
        self.sched = Schedules(cfgs, self.epochs)
        self.train = Stacked.of(members, "train", self.device, self.dtype, share=True)
        self.shuffled: Stacked | None = None  # the epoch's order of it, a kept buffer
        has_val = len(members[0].splits.y_val) > 0
        self.val = Stacked.of(members, "val", self.device, self.dtype) if has_val else None
        self.orders = [
            TensorBatches(m.splits.x_train, m.splits.y_train, 1, True, m.cfg.seed) for m in members
        ]
        self._stack_regularizers()
        self.t = 0  # optimizer steps so far: every model's clock reads (TRAIN, t)

    def _stack_regularizers(self) -> None:
        """The stacked forms of the remaining models' regularizers (the same entries,
        each model's own values: plan.py groups them so)."""
        regs = [self.members[i].module.reg for i in self.alive]
        self.clocks = [self.members[i].module.clock for i in self.alive]
        self.penalties = {
            name: type(p).stacked([r.penalties[name] for r in regs])
            for name, p in regs[0].penalties.items()
        }
        self.constraints = [
            type(c).stacked([r.constraints[j] for r in regs])
            for j, c in enumerate(regs[0].constraints)
        ]
        self.transforms = [
            type(t).stacked([r.transforms[j] for r in regs])
            for j, t in enumerate(regs[0].transforms)
        ]
        # parameter segments a loss term reads: they take part in every step (per-batch
        # skips), and the products can write the gradients directly only if there are none
        self.covered = penalty_segments(self.prog, self.penalties.values())
        self.prog.use_direct_grads(not bool(self.covered.any()))

    # --- one epoch --------------------------------------------------------------------
    def _penalties(self, logits: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Per-model loss terms (S,) in config order, as ``train/reg/<name>``."""
        return {
            f"reg/{name}": p(self.prog, logits, target, self.t)
            for name, p in self.penalties.items()
        }

    def train_epoch(self, epoch: int) -> dict[str, Tensor]:
        bs = int(self.cfg0.data.batch_size)
        N = self.train.y.shape[1]
        n_batches = limit_batches(-(-N // bs), self.cfg0.trainer.limit_train_batches)
        perm = torch.stack([self.orders[i].order(epoch) for i in self.alive]).to(self.device)
        rows = torch.arange(len(self.alive), device=self.device).unsqueeze(1)
        if self.shuffled is None or self.shuffled.y.shape != self.train.y.shape:
            x = self.train.x
            self.shuffled = Stacked(
                x.new_empty(*perm.shape, *x.shape[2:]), self.train.y.new_empty(perm.shape)
            )
        x_all = gather_rows(self.train.x, perm, rows, self.shuffled.x)
        y_all = gather_rows(self.train.y, perm, rows, self.shuffled.y)
        self.opt.set_lr(self.sched.lrs())
        keys = ("loss", "loss_data", "acc", *(f"reg/{k}" for k in self.penalties))
        sums = torch.zeros(len(self.alive), len(keys), device=self.device)
        n = 0
        for i in range(n_batches):
            x, y = x_all[:, i * bs : (i + 1) * bs], y_all[:, i * bs : (i + 1) * bs]
            sums += self._step(x, y) * y.shape[1]
            n += y.shape[1]
        self.sched.step()
        means = sums / max(n, 1)
        return {f"train/{k}": means[:, j] for j, k in enumerate(keys)}

    def _step(self, x: Tensor, y: Tensor) -> Tensor:
        """One optimizer step of every model on its mini-batch x (S, B, ...), y (S, B);
        returns the batch's (S, k) values in the order of the epoch's keys."""
        for clock in self.clocks:  # this step's draws, in every model's own streams
            clock.now = (TRAIN, self.t)
        x = self.prep(x)
        target = y
        for transform in self.transforms:  # x (S, B, ...), in config order
            x, target = transform(x, target)
        logits = self.prog.forward(x, training=True)
        loss_data = losses(logits, target)  # the accuracy stays measured against y
        terms = self._penalties(logits, target)
        loss = loss_data + sum(terms.values()) if terms else loss_data
        flat = self.prog.flat
        self.prog.backward(loss.sum())  # models are independent: each its own gradient
        if self.prog.mask is not None:  # padding gets no gradient, so it stays zero
            flat.grad.mul_(self.prog.mask)
        clip = self.cfg0.trainer.gradient_clip_val
        if clip:
            clip_grad_norms(flat, float(clip))
        self.opt.step(self._touched())
        self.t += 1
        if self.constraints:
            weights = Weights(self.prog.views(flat.detach()))
            for constrain in self.constraints:
                constrain(weights)
        acc = (predictions(logits) == y).float().mean(1)
        return torch.stack([loss, loss_data, acc, *terms.values()], 1).detach()

    def _touched(self) -> Tensor | None:
        """(S, P) bool: the entries that took part in this step (None: all of them)."""
        dropped = self.prog.dropped_segments() if self.prog.skips else []
        if not dropped:
            return None
        seg = torch.ones(len(self.alive), len(self.prog.sizes), dtype=torch.bool)
        for lo, hi, models in dropped:
            seg[models, lo:hi] = False
        seg |= self.covered
        sizes = torch.tensor(self.prog.sizes)
        return seg.repeat_interleave(sizes, dim=1).to(self.device, non_blocking=True)

    # --- the whole run ----------------------------------------------------------------
    def fit(self, report: Report, fail: Fail, diag_every: int, diagnose) -> None:
        check_val = int(self.cfg0.trainer.check_val_every_n_epoch)
        for epoch in range(self.epochs):
            train = self.train_epoch(epoch)
            val = None
            if self.val is not None and (epoch + 1) % check_val == 0:
                val = evaluate(self.prog, self.val, self.members[0].eval_batch_size, self.prep)
            train_cpu = {k: v.tolist() for k, v in train.items()}
            val_cpu = {} if val is None else {f"val/{k}": v.tolist() for k, v in val.items()}
            failed = []
            for j, i in enumerate(self.alive):
                loss = train_cpu["train/loss"][j]
                if loss != loss or abs(loss) == float("inf"):
                    fail(i, _diverged(loss, epoch))
                    failed.append(j)
                    continue
                report(i, {k: v[j] for k, v in val_cpu.items()}, epoch)
                report(i, {k: v[j] for k, v in train_cpu.items()}, epoch)
            if failed:
                self._drop(failed)
                if not self.alive:
                    return
            last = epoch + 1 == self.epochs
            if diag_every and (epoch + 1) % diag_every == 0 and not last:
                self.prog.unstack()
                for i in self.alive:
                    diagnose(i, epoch)

    def finish(self, diagnose) -> dict[int, dict[str, float]]:
        """Diagnostics at the last epoch (as Lightning's ``on_train_end``), then the test
        metrics of every remaining model, by original index."""
        if not self.alive:
            return {}
        self.prog.unstack()
        for i in self.alive:
            diagnose(i, self.epochs - 1)
        members = [self.members[i] for i in self.alive]
        test_data = Stacked.of(members, "test", self.device, self.dtype)
        test = evaluate(self.prog, test_data, EVAL_BATCH, self.prep)
        test_cpu = {f"test/{k}": v.tolist() for k, v in test.items()}
        return {i: {k: v[j] for k, v in test_cpu.items()} for j, i in enumerate(self.alive)}

    def _drop(self, positions: list[int]) -> None:
        keep = [j for j in range(len(self.alive)) if j not in positions]
        idx = torch.tensor(keep, device=self.device)
        self.prog.select(keep)
        self.opt.select(keep, self.prog.flat)
        self.sched.select(keep)
        self.train = self.train.select(idx)
        self.val = None if self.val is None else self.val.select(idx)
        self.alive = [self.alive[j] for j in keep]
        self._stack_regularizers()


def penalty_segments(prog: StackedNet, penalties) -> Tensor:
    """(P_segments,) bool: the parameter segments some loss term reads, asked of autograd
    (``grad`` None: not read), with stand-in parameters, logits and targets."""

    class Params:
        params = [t.detach().clone().requires_grad_() for t in prog.views(prog.flat)]

    S = prog.flat.shape[0]
    logits = torch.zeros(S, 1, 2, device=prog.flat.device, dtype=prog.flat.dtype)
    targets = torch.zeros(S, 1, dtype=torch.long, device=prog.flat.device)
    read = torch.zeros(len(Params.params), dtype=torch.bool)
    for p in penalties:
        out = p(Params, logits, targets, 0)
        if out.requires_grad:
            grads = torch.autograd.grad(out.sum(), Params.params, allow_unused=True)
            read |= torch.tensor([g is not None for g in grads])
    return read


def _diverged(loss: float, epoch: int) -> FloatingPointError:
    return FloatingPointError(
        f"train/loss became {loss} at epoch {epoch}; "
        "lower optim.lr or check the regularizer strengths"
    )

"""The training loop of a batched group: a plain PyTorch loop over stacked models.

It does per model what :class:`~regbench.module.RegModule` under Lightning does for one:
the same mini-batches in the same order (each model's own ``TensorBatches.order``), the
same loss (cross-entropy plus the loss terms: penalties, label smoothing), one optimizer step per
mini-batch followed by the constraints, the epoch's scheduler step, validation every
``check_val_every_n_epoch`` epochs, the test at the end, with the same epoch means. A
model whose ``train/loss`` is not finite at an epoch's end fails with the message the
module raises, and leaves the group; the others go on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from regbench.batched.optim import (
    Schedules,
    StackedOptimizer,
    clip_grad_norms,
    constrain,
    penalty_values,
    per_model,
)
from regbench.batched.plan import Member
from regbench.batched.program import StackedMLP
from regbench.batched.transforms import mixup, smoothing_gap, soft_losses
from regbench.data.batches import TensorBatches, limit_batches
from regbench.reg.augment1d import Augment1d

Report = Callable[[int, dict[str, float], int], None]  # (member index, metrics, epoch)
Fail = Callable[[int, BaseException], None]
EVAL_BATCH = 1000  # the data module's eval batch size


@dataclass
class Stacked:
    """Per-model tensors of one split: x (S, N, *shape), y (S, N)."""

    x: Tensor
    y: Tensor

    @classmethod
    def of(cls, members: Sequence[Member], split: str, device) -> Stacked:
        xs = [getattr(m.splits, f"x_{split}") for m in members]
        ys = [getattr(m.splits, f"y_{split}") for m in members]
        return cls(torch.stack(xs).to(device), torch.stack(ys).to(device))

    def select(self, idx: Tensor) -> Stacked:
        return Stacked(self.x[idx], self.y[idx])


def losses(logits: Tensor, y: Tensor) -> Tensor:
    """Per-model mean cross-entropy (S,) of logits (S, B, K) against y (S, B)."""
    # classes on dim 1, (S, K, B): PyTorch's CPU log-softmax over a last dim of 10
    # classes runs ~4x slower than over a strided dim, vectorised along the batch
    return F.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(1)


def predictions(logits: Tensor) -> Tensor:
    """argmax over classes of logits (S, B, K), the first on ties as ``argmax``. On the
    forward's (S, K, B) layout ``max(1).indices`` is ~15x faster than ``argmax`` on CPU."""
    return logits.transpose(1, 2).max(1).indices


def gather_rows(t: Tensor, perm: Tensor, rows: Tensor) -> Tensor:
    """``t[rows, perm]`` for t (S, N, ...) and perm (S, N): each model's samples in its
    own order, as one ``index_select`` on the flattened rows (~3x faster than advanced
    indexing on two dimensions)."""
    S, N = t.shape[:2]
    flat = t.reshape(S * N, *t.shape[2:]).index_select(0, (perm + rows * N).view(-1))
    return flat.view(S, N, *t.shape[2:])


@torch.no_grad()
def evaluate(prog: StackedMLP, data: Stacked, batch_size: int) -> dict[str, Tensor]:
    """Eval-mode loss and accuracy per model, as the module's epoch means."""
    S, N = data.y.shape
    sums = torch.zeros(S, 2, device=data.y.device)
    for i in range(0, N, batch_size):
        x, y = data.x[:, i : i + batch_size], data.y[:, i : i + batch_size]
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
        self.prog = StackedMLP([m.model for m in members], self.device)
        cfgs = [m.cfg for m in members]
        self.opt = StackedOptimizer(self.prog.flat, self.prog.decay_free_flat, cfgs)
        self.sched = Schedules(cfgs, self.epochs)
        self.train = Stacked.of(members, "train", self.device)
        self.val = Stacked.of(members, "val", self.device) if len(members[0].splits.y_val) else None
        self.orders = [
            TensorBatches(m.splits.x_train, m.splits.y_train, 1, True, m.cfg.seed) for m in members
        ]
        self.reg = members[0].reg_plan  # kinds equal across the group (plan.py)
        values = members[0].reg_values(members)
        self.values = {k: per_model(v, self.device) for k, v in values.items()}

    # --- one epoch --------------------------------------------------------------------
    def _penalties(self, logits: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Per-model loss terms (S,) in config order, as ``train/reg/<name>``."""
        out = {}
        for name, (kind, which) in self.reg["penalties"].items():
            if kind == "label_smoothing":  # eps * (U - CE(t)): the smoothed CE in total
                out[f"reg/{name}"] = self.values[f"{name}.smoothing"] * smoothing_gap(
                    logits, target
                )
                continue
            ratio = self.values.get(f"{name}.l1_ratio")
            out[f"reg/{name}"] = self.values[f"{name}.strength"] * penalty_values(
                self.prog.params, self.prog.decay_free, kind, which, ratio
            )
        return out

    def train_epoch(self, epoch: int) -> dict[str, Tensor]:
        bs = int(self.cfg0.data.batch_size)
        N = self.train.y.shape[1]
        n_batches = limit_batches(-(-N // bs), self.cfg0.trainer.limit_train_batches)
        perm = torch.stack([self.orders[i].order(epoch) for i in self.alive]).to(self.device)
        rows = torch.arange(len(self.alive), device=self.device).unsqueeze(1)
        x_all, y_all = gather_rows(self.train.x, perm, rows), gather_rows(self.train.y, perm, rows)
        self.opt.set_lr(self.sched.lrs())
        keys = ("loss", "loss_data", "acc", *(f"reg/{k}" for k in self.reg["penalties"]))
        sums = torch.zeros(len(self.alive), len(keys), device=self.device)
        n = 0
        for i in range(n_batches):
            x, y = x_all[:, i * bs : (i + 1) * bs], y_all[:, i * bs : (i + 1) * bs]
            sums += self._step(x, y) * y.shape[1]
            n += y.shape[1]
        self.sched.step()
        means = sums / max(n, 1)
        return {f"train/{k}": means[:, j] for j, k in enumerate(keys)}

    def _transform(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor | None]:
        """The batch transforms in config order: augment1d draws per sample (all models'
        samples as one batch of S * B), mixup per model."""
        target = None
        augments = iter(t for t in self.members[0].module.reg.transforms if type(t) is Augment1d)
        for kind in self.reg["transforms"]:
            if kind == "augment1d":
                S, B = y.shape
                x = next(augments)(x.reshape(S * B, *x.shape[2:]), None)[0].view_as(x)
            else:
                x, target = mixup(x, y, self.values["mixup"], self.members[0].splits.num_classes)
        return x, target

    def _step(self, x: Tensor, y: Tensor) -> Tensor:
        """One optimizer step of every model on its mini-batch x (S, B, ...), y (S, B);
        returns the batch's (S, k) values in the order of the epoch's keys."""
        x, target = self._transform(x, y)
        logits = self.prog.forward(x, training=True)
        if target is None:
            target = y
            loss_data = losses(logits, y)
        else:  # mixup's soft targets; the accuracy stays measured against y
            loss_data = soft_losses(logits, target)
        terms = self._penalties(logits, target)
        loss = loss_data + sum(terms.values()) if terms else loss_data
        flat = self.prog.flat
        flat.grad = None
        loss.sum().backward()  # models are independent: each gets its own gradient
        if self.prog.mask is not None:  # padding gets no gradient, so it stays zero
            flat.grad.mul_(self.prog.mask)
        clip = self.cfg0.trainer.gradient_clip_val
        if clip:
            clip_grad_norms(flat, float(clip))
        self.opt.step()
        if self.reg["constraints"]:
            weights = self.prog.views(flat.detach())
            for kind, c in self.reg["constraints"]:
                constrain(weights, self.prog.decay_free, kind, self.values[c])
        acc = (predictions(logits) == y).float().mean(1)
        return torch.stack([loss, loss_data, acc, *terms.values()], 1).detach()

    # --- the whole run ----------------------------------------------------------------
    def fit(self, report: Report, fail: Fail, diag_every: int, diagnose) -> None:
        check_val = int(self.cfg0.trainer.check_val_every_n_epoch)
        for epoch in range(self.epochs):
            train = self.train_epoch(epoch)
            val = None
            if self.val is not None and (epoch + 1) % check_val == 0:
                val = evaluate(self.prog, self.val, self.members[0].eval_batch_size)
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
        test = evaluate(self.prog, Stacked.of(members, "test", self.device), EVAL_BATCH)
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
        self.values = {k: v[idx] for k, v in self.values.items()}
        self.alive = [self.alive[j] for j in keep]


def _diverged(loss: float, epoch: int) -> FloatingPointError:
    return FloatingPointError(
        f"train/loss became {loss} at epoch {epoch}; "
        "lower optim.lr or check the regularizer strengths"
    )

"""The LightningModule: data loss + penalties, epoch-level metrics, regularizer hooks.

Per-step work is kept to tensor ops (no ``.item()``, no per-step ``self.log``): sums are
accumulated on the device and logged once per epoch, which keeps Lightning's overhead
small next to a hand-written loop (see ``regbench bench``).

Two training modes, with the same optimizer steps in the same order (a test checks the
metrics are bit-identical):

- ``steps_per_call == 1``: Lightning's automatic optimization, one Lightning step per
  mini-batch.
- ``steps_per_call > 1`` (the default, ``trainer.steps_per_call``): the data module
  hands over a list of mini-batches and ``training_step`` runs one optimizer step per
  mini-batch itself (Lightning's manual optimization: ``manual_backward``, the
  ``LightningOptimizer`` step, gradient clipping, the epoch's scheduler step). Lightning's
  loop costs about 1 ms a call on a small CPU, more than a small MLP's whole step; this
  pays it once per list instead of once per mini-batch. Callback hooks that Lightning
  calls per optimizer step (``on_before_backward``, ``on_after_backward``,
  ``on_before_optimizer_step``) still run per step; batch-level ones
  (``on_train_batch_start/end``) run once per list: a callback that needs them per
  mini-batch wants ``trainer.steps_per_call=1``.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn

from regbench.optim import build_optimizer, build_scheduler
from regbench.reg.bundle import Regularizers
from regbench.reg.inference import mc_log_probs
from regbench.streams import MC, SPLITS, TRAIN, Clock, clock_of


class EpochMeans:
    """Sums of per-batch quantities on the device, averaged over samples at epoch end.

    The values of a batch are stacked into one tensor, so a step costs three small ops
    whatever the number of quantities (at a few µs each they add up over a run)."""

    def __init__(self) -> None:
        self.keys: tuple[str, ...] = ()
        self.sum: Tensor | None = None
        self.n = 0

    def add(self, n: int, **values: Tensor) -> None:
        keys = tuple(values)
        if self.sum is not None and keys != self.keys:
            raise ValueError(f"EpochMeans got {keys} after {self.keys} in one epoch")
        v = torch.stack([t.detach().float() for t in values.values()]) * n
        self.sum = v if self.sum is None else self.sum + v
        self.keys, self.n = keys, self.n + n

    def pop(self, prefix: str) -> dict[str, Tensor]:
        if self.sum is None:
            return {}
        means = self.sum / max(self.n, 1)
        out = {f"{prefix}/{k}": means[i] for i, k in enumerate(self.keys)}
        self.sum, self.n = None, 0
        return out


_PLAIN = frozenset({"_current_fx_name", "_step", "clock"})


class RegModule(pl.LightningModule):
    def __init__(
        self,
        model: nn.Module,
        optim: DictConfig,
        scheduler: DictConfig,
        max_epochs: int,
        reg: Regularizers | None = None,
        steps_per_call: int = 1,
        gradient_clip_val: float | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.optim_cfg, self.sched_cfg, self.max_epochs = optim, scheduler, max_epochs
        self.reg = reg or Regularizers()
        self._stats = {"train": EpochMeans(), "val": EpochMeans(), "test": EpochMeans()}
        self.steps_per_call = int(steps_per_call)
        # Automatic optimization clips with the trainer's gradient_clip_val; manual
        # optimization forbids that, so the module clips (by norm) itself.
        self.gradient_clip_val = gradient_clip_val
        self.automatic_optimization = self.steps_per_call == 1
        self._step = 0  # optimizer steps so far, the `step` of the penalty hook
        # The counter the run's stochastic layers and transforms draw at (set per step):
        # docs/ARCHITECTURE.md, "Randomness".
        self.clock = clock or clock_of(model) or Clock()

    def __setattr__(self, name: str, value) -> None:
        # Lightning sets `_current_fx_name` around every hook call (about 40 times a
        # step), and the step counter changes every step; nn.Module.__setattr__'s
        # parameter/buffer/module checks make each ~10 µs. Both are plain attributes.
        if name in _PLAIN:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    # --- steps --------------------------------------------------------------------
    def training_step(self, batch, batch_idx: int) -> Tensor | None:
        if self.automatic_optimization:
            return self._train_loss(*batch)
        opt = self.optimizers()
        params = [p for group in opt.param_groups for p in group["params"]]
        for x, y in batch:  # a list of mini-batches: one optimizer step each
            loss = self._train_loss(x, y)
            # zero_grad(set_to_none=True) without torch's per-call wrappers (~0.1 ms here)
            for p in params:
                p.grad = None
            self.manual_backward(loss)
            if self.gradient_clip_val:
                self.clip_gradients(opt, self.gradient_clip_val, "norm")
            opt.step()
            self._constrain()
        return None

    def on_train_start(self) -> None:
        self._step = self.trainer.global_step  # a resumed run counts on from where it was

    def _train_loss(self, x: Tensor, y: Tensor) -> Tensor:
        self.clock.now = (TRAIN, self._step)  # this step's masks, augmentations, pairings
        target = y
        for transform in self.reg.transforms:
            x, target = transform(x, target)
        logits = self.model(x)
        loss_data = F.cross_entropy(logits, target)
        loss = loss_data
        terms = {}
        for name, penalty in self.reg.penalties.items():
            terms[f"reg/{name}"] = value = penalty(self.model, logits, target, self._step)
            loss = loss + value
        self._step += 1
        correct = (logits.argmax(1) == y).float().mean()
        self._stats["train"].add(len(y), loss=loss, loss_data=loss_data, acc=correct, **terms)
        return loss

    def _eval_step(self, split: str, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, y = batch
        inf = self.reg.inference
        # mc: log of the mean probabilities of k stochastic passes (log-probs feed the NLL),
        # their masks at (MC, split, epoch, batch, pass) of the run's streams.
        if inf.mode == "mc":
            counter = (MC, SPLITS[split], self.current_epoch, batch_idx)
            logits = mc_log_probs(self.model, x, inf.samples, counter)
        else:
            logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        self._stats[split].add(len(y), loss=loss, acc=(logits.argmax(1) == y).float().mean())

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step("val", batch, batch_idx)

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step("test", batch, batch_idx)

    # --- hooks --------------------------------------------------------------------
    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)  # automatic optimization only
        self._constrain()

    def _constrain(self) -> None:
        # Projections (max-norm etc.) right after each step, so every forward pass and
        # the final weights satisfy them.
        if self.reg.constraints:
            with torch.no_grad():
                for constrain in self.reg.constraints:
                    constrain(self.model)

    def on_train_epoch_end(self) -> None:
        metrics = self._stats["train"].pop("train")
        loss = metrics["train/loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"train/loss became {loss.item()} at epoch {self.current_epoch}; "
                "lower optim.lr or check the regularizer strengths"
            )
        self.log_dict(metrics)
        if not self.automatic_optimization:
            # Lightning steps epoch schedulers itself only under automatic optimization.
            scheduler = self.lr_schedulers()
            if scheduler is not None:
                scheduler.step()

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self.log_dict(self._stats["val"].pop("val"))

    def on_test_epoch_end(self) -> None:
        self.log_dict(self._stats["test"].pop("test"))

    def configure_optimizers(self):
        optimizer = build_optimizer(self.optim_cfg, self.model)
        scheduler = build_scheduler(self.sched_cfg, optimizer, self.max_epochs)
        if scheduler is None:
            return optimizer
        sched = {"scheduler": scheduler, "interval": "epoch"}
        return {"optimizer": optimizer, "lr_scheduler": sched}

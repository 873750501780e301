"""The LightningModule: data loss + penalties, epoch-level metrics, regularizer hooks.

Per-step work is kept to tensor ops (no ``.item()``, no per-step ``self.log``): sums are
accumulated on the device and logged once per epoch, which keeps Lightning's overhead
small next to a hand-written loop (see ``regbench bench``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn

from regbench.optim import build_optimizer, build_scheduler
from regbench.reg.inference import Inference, mc_log_probs

Penalty = Callable[[nn.Module], Tensor]
Constraint = Callable[[nn.Module], None]
BatchTransform = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


@dataclass
class Regularizers:
    """What the ``reg`` config group contributes, by where it plugs in (DESIGN.md)."""

    penalties: dict[str, Penalty] = field(default_factory=dict)  # loss terms
    constraints: list[Constraint] = field(default_factory=list)  # after optimizer.step
    transforms: list[BatchTransform] = field(default_factory=list)  # train batches
    callbacks: list[pl.Callback] = field(default_factory=list)  # procedures
    label_smoothing: float = 0.0
    inference: Inference = field(default_factory=Inference)  # test-time stochastic layers


class EpochMeans:
    """Sums of per-batch quantities on the device, averaged over samples at epoch end."""

    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.n = 0

    def add(self, n: int, **values: Tensor) -> None:
        self.n += n
        for k, v in values.items():
            v = v.detach() * n
            self.sums[k] = self.sums[k] + v if k in self.sums else v

    def pop(self, prefix: str) -> dict[str, Tensor]:
        out = {f"{prefix}/{k}": v / max(self.n, 1) for k, v in self.sums.items()}
        self.sums, self.n = {}, 0
        return out


class RegModule(pl.LightningModule):
    def __init__(
        self,
        model: nn.Module,
        optim: DictConfig,
        scheduler: DictConfig,
        max_epochs: int,
        reg: Regularizers | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.optim_cfg, self.sched_cfg, self.max_epochs = optim, scheduler, max_epochs
        self.reg = reg or Regularizers()
        self._stats = {"train": EpochMeans(), "val": EpochMeans(), "test": EpochMeans()}

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    # --- steps --------------------------------------------------------------------
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        target = y
        for transform in self.reg.transforms:
            x, target = transform(x, target)
        logits = self.model(x)
        loss_data = F.cross_entropy(logits, target, label_smoothing=self.reg.label_smoothing)
        loss = loss_data
        terms = {}
        for name, penalty in self.reg.penalties.items():
            terms[f"reg/{name}"] = value = penalty(self.model)
            loss = loss + value
        correct = (logits.argmax(1) == y).float().mean()
        self._stats["train"].add(len(y), loss=loss, loss_data=loss_data, acc=correct, **terms)
        return loss

    def _eval_step(self, split: str, batch: tuple[Tensor, Tensor]) -> None:
        x, y = batch
        inf = self.reg.inference
        # mc: log of the mean probabilities of k stochastic passes (log-probs feed the NLL).
        mc = inf.mode == "mc"
        logits = mc_log_probs(self.model, x, inf.samples) if mc else self.model(x)
        loss = F.cross_entropy(logits, y)
        self._stats[split].add(len(y), loss=loss, acc=(logits.argmax(1) == y).float().mean())

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step("val", batch)

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step("test", batch)

    # --- hooks --------------------------------------------------------------------
    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)
        # Projections (max-norm etc.) right after each step, so every forward pass and
        # the final weights satisfy them.
        if self.reg.constraints:
            with torch.no_grad():
                for constrain in self.reg.constraints:
                    constrain(self.model)

    def on_fit_start(self) -> None:
        # Transforms that build soft targets (mixup) need the number of classes.
        splits = getattr(getattr(self.trainer, "datamodule", None), "splits", None)
        for transform in self.reg.transforms:
            if hasattr(transform, "bind") and splits is not None:
                transform.bind(splits.num_classes)

    def on_train_epoch_end(self) -> None:
        metrics = self._stats["train"].pop("train")
        loss = metrics["train/loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"train/loss became {loss.item()} at epoch {self.current_epoch}; "
                "lower optim.lr or check the regularizer strengths"
            )
        self.log_dict(metrics)

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

"""Validation every n optimizer steps (``trainer.val_every_n_steps``), for claims about
*when* a run reaches an accuracy: Lightning validates once an epoch, which counts steps
only in whole epochs (Ioffe & Szegedy 2015, arXiv 1502.03167, sec. 4.2, count the steps
Inception takes to reach the baseline's accuracy).

Before the first optimizer step and after every n-th, the model is evaluated in eval mode
on a fixed held-out subset, the first ``trainer.val_step_samples`` samples of the
validation split (0: all of it), and ``val_step/acc`` and ``val_step/loss`` are logged
on the run with the optimizer step as their MLflow step (written once, when training
ends). The evaluation draws no random number, touches no gradient and restores the
training mode, so a run is the same with and without it (tested bit for bit). Inference
is deterministic (no Monte-Carlo averaging under ``model.test_mode=mc``), as in the
diagnostics.

A Lightning callback: ``on_before_optimizer_step`` runs once per optimizer step in both
optimization modes, whatever ``trainer.steps_per_call`` is, and the model it sees before
step k + 1 is the model after k steps; the end of an epoch covers a multiple of n that
falls on the epoch's last step. Batched groups have no per-step hook: a run with this
option runs one by one (``single_reason``; the batched path records it).
"""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn

from regbench.errors import ConfigError

Prep = Callable[[Tensor], Tensor]


class StepValidation(pl.Callback):
    """Evaluates ``(x, y)`` every ``every`` optimizer steps; ``points`` holds
    ``(step, acc, loss)`` in step order."""

    single_reason = "it validates every n optimizer steps (no batched form)"

    def __init__(
        self, every: int, x: Tensor, y: Tensor, prep: Prep | None = None, batch_size: int = 1000
    ) -> None:
        self.every, self.x, self.y = int(every), x, y
        self.prep, self.batch_size = prep or (lambda t: t), int(batch_size)
        self.steps = 0  # optimizer steps taken so far
        self.points: list[tuple[int, float, float]] = []

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.steps, self.points = 0, []
        self.x, self.y = self.x.to(pl_module.device), self.y.to(pl_module.device)  # once

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self._maybe_evaluate(pl_module.model)
        self.steps += 1

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._maybe_evaluate(pl_module.model)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        run = getattr(trainer.logger, "run", None)  # MlflowEpochLogger's TrackedRun
        if run is not None and self.points:
            log_points(run, self.points)

    def _maybe_evaluate(self, model: nn.Module) -> None:
        if self.steps % self.every == 0 and (not self.points or self.points[-1][0] != self.steps):
            self.points.append((self.steps, *self.evaluate(model)))

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> tuple[float, float]:
        """(accuracy, mean cross-entropy) of ``model`` in eval mode on the subset."""
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        correct, loss = 0.0, 0.0
        for i in range(0, len(self.y), self.batch_size):
            x = self.prep(self.x[i : i + self.batch_size].to(device))  # (B, *input_shape)
            y = self.y[i : i + self.batch_size].to(device)
            logits = model(x)  # (B, K)
            correct += float((logits.argmax(1) == y).sum())
            loss += float(F.cross_entropy(logits, y, reduction="sum"))
        model.train(was_training)
        n = len(self.y)
        return correct / n, loss / n


def log_points(run, points: list[tuple[int, float, float]]) -> None:
    """``val_step/acc`` and ``val_step/loss`` at their steps, in batches of MLflow's limit."""
    import time

    from mlflow.entities import Metric

    from regbench.tracking import deferred_sigint

    ms = int(time.time() * 1000)
    metrics = [
        Metric(key, value, ms, step)
        for step, acc, loss in points
        for key, value in (("val_step/acc", acc), ("val_step/loss", loss))
    ]
    for i in range(0, len(metrics), 1000):
        with deferred_sigint():
            run.client.log_batch(run.run_id, metrics=metrics[i : i + 1000], synchronous=True)


def step_validation(
    trainer_cfg: DictConfig, x_val: Tensor, y_val: Tensor, prep: Prep | None = None
) -> StepValidation | None:
    """The callback ``trainer.val_every_n_steps`` asks for (None when 0), on the first
    ``trainer.val_step_samples`` validation samples (0: all)."""
    every = int(trainer_cfg.get("val_every_n_steps", 0) or 0)
    if every == 0:
        return None
    if len(y_val) == 0:
        raise ConfigError(
            f"trainer.val_every_n_steps={every} needs a validation split, but it is empty; "
            "set data.val_fraction > 0 or trainer.val_every_n_steps=0"
        )
    n = int(trainer_cfg.get("val_step_samples", 0) or 0) or len(y_val)
    return StepValidation(every, x_val[:n], y_val[:n], prep)

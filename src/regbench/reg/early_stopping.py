"""Early stopping on a monitored metric, restoring the best weights before the test.

Stop when ``monitor`` (logged once per validation epoch, e.g. ``val/loss``) has not
improved by more than ``min_delta`` for ``patience`` validation epochs; at the end of
training, load the weights of the best epoch back into the model, so ``trainer.test``
(and the diagnostics) see them. For a quadratic loss and gradient descent, stopping
after t steps acts like an L2 penalty of strength about 1/(lr * t) (Bishop 1995,
"Regularization and complexity control in feed-forward networks"; Goodfellow et al.
2016, section 7.8).

Logged: ``diag/best_epoch`` and ``diag/stopped_epoch`` (both 0-based) and
``diag/best_value``, the monitored metric at the best epoch.
"""

from __future__ import annotations

import math

import pytorch_lightning as pl
from omegaconf import DictConfig

from regbench.errors import ConfigError, choice, in_range, positive_int
from regbench.reg import REGULARIZERS


class EarlyStoppingBest(pl.Callback):
    single_reason = "it stops a run and restores its best weights (no stacked form)"

    def __init__(
        self,
        monitor: str = "val/loss",
        mode: str = "min",
        patience: int = 5,
        min_delta: float = 0.0,
    ) -> None:
        self.monitor, self.mode = monitor, mode
        self.patience, self.min_delta = int(patience), float(min_delta)
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch = -1
        self.best_state: dict | None = None
        self.wait = 0

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if self.monitor not in trainer.callback_metrics:
            raise KeyError(
                f"early stopping monitors {self.monitor!r}, which is not logged; "
                f"logged: {', '.join(sorted(trainer.callback_metrics))}"
            )
        value = float(trainer.callback_metrics[self.monitor])  # once per epoch: sync is fine
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, trainer.current_epoch, 0
            # A copy off the device: the live tensors keep changing.
            self.best_state = {
                k: v.detach().to("cpu", copy=True) for k, v in pl_module.state_dict().items()
            }
        else:
            self.wait += 1
            if self.wait >= self.patience:
                trainer.should_stop = True

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.best_state is not None:
            pl_module.load_state_dict(self.best_state)
        if trainer.logger is not None:
            last = max(trainer.current_epoch - 1, 0)
            metrics = {"diag/best_epoch": self.best_epoch, "diag/stopped_epoch": last}
            if math.isfinite(self.best):  # the monitored value at the best epoch
                metrics["diag/best_value"] = self.best
            trainer.logger.log_metrics(metrics, step=last)


@REGULARIZERS.register("early_stopping", "earlystopping")
def add_early_stopping(entry: DictConfig, bundle, key: str) -> None:
    monitor = entry.monitor
    if not isinstance(monitor, str) or "/" not in monitor:
        raise ConfigError(
            f"{key}.monitor={monitor!r} is not valid; name a logged metric like val/loss"
        )
    mode = entry.mode
    choice(f"{key}.mode", mode, ("min", "max"))
    positive_int(f"{key}.patience", entry.patience)
    in_range(f"{key}.min_delta", entry.min_delta, 0.0)
    bundle.callbacks.append(EarlyStoppingBest(monitor, mode, entry.patience, entry.min_delta))

"""What a run costs: wall time of fit, per epoch, and to reach a target metric.

Logged under ``time/`` at the end of fit:

- ``time/fit_s``: wall time of the ``trainer.fit`` call (Lightning's setup included);
- ``time/epoch_s``: mean wall time of an epoch (training and validation), from the first
  epoch's start to the last one's end over the number of epochs run;
- ``time/to_target_s`` (with ``trainer.target_metric`` and ``trainer.target_value``):
  wall time from the first epoch's start to the end of the first epoch whose logged
  value of the target metric reaches the target (``>=`` for ``target_mode: max``, ``<=``
  for ``min``), with ``time/to_target_epoch`` (0-based). A run that never reaches it
  logs neither and is tagged ``time.target_reached=false``.

The check runs at each epoch boundary, once Lightning has collected every metric of the
epoch that ended (validation and training), so it sees ``train/`` and ``val/`` metrics.
"""

from __future__ import annotations

import math
import time

import pytorch_lightning as pl
from omegaconf import DictConfig

from regbench.errors import ConfigError, choice

MODES = ("max", "min")


def check_target(trainer_cfg: DictConfig) -> None:
    """Bad target settings fail before training, naming the key."""
    metric = trainer_cfg.get("target_metric")
    if metric is None:
        return
    if not isinstance(metric, str) or not metric.startswith(("train/", "val/")):
        raise ConfigError(
            f"trainer.target_metric={metric!r} is not valid; it must be a per-epoch metric "
            "name starting with train/ or val/ (e.g. val/acc)"
        )
    value = trainer_cfg.get("target_value")
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(
            f"trainer.target_value={value!r} is not valid; trainer.target_metric={metric} "
            "needs a number to reach"
        )
    choice("trainer.target_mode", trainer_cfg.get("target_mode", "max"), MODES)


class CostTimer(pl.Callback):
    """Times fit and the epochs; finds the first epoch that reaches the target."""

    def __init__(self, metric: str | None = None, value: float = 0.0, mode: str = "max"):
        self.metric, self.value, self.mode = metric, float(value), mode
        self.t0: float | None = None
        self.epoch_ends: list[float] = []
        self.to_target: tuple[float, int] | None = None
        self.seen_metric = False

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module) -> None:
        if self.t0 is None:
            self.t0 = time.perf_counter()
        self._check(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module) -> None:
        self.epoch_ends.append(time.perf_counter())

    def on_fit_end(self, trainer: pl.Trainer, pl_module) -> None:
        self._check(trainer)

    def _check(self, trainer: pl.Trainer) -> None:
        """At a boundary, the metrics of the epoch that just ended are all collected."""
        if self.metric is None or self.to_target is not None or not self.epoch_ends:
            return
        value = trainer.callback_metrics.get(self.metric)
        if value is None:
            return
        self.seen_metric = True
        v = float(value)
        if v >= self.value if self.mode == "max" else v <= self.value:
            epoch = len(self.epoch_ends) - 1
            self.to_target = (self.epoch_ends[-1] - self.t0, epoch)

    def metrics(self, fit_s: float) -> dict[str, float]:
        """The ``time/`` metrics, given the measured wall time of the fit call."""
        out = {"time/fit_s": fit_s}
        if self.t0 is None or not self.epoch_ends:
            return out
        out["time/epoch_s"] = (self.epoch_ends[-1] - self.t0) / len(self.epoch_ends)
        if self.to_target is not None:
            out["time/to_target_s"] = self.to_target[0]
            out["time/to_target_epoch"] = float(self.to_target[1])
        return out

    def tags(self) -> dict[str, str]:
        if self.metric is None:
            return {}
        if not self.seen_metric:
            return {"time.target_reached": f"false ({self.metric} was never logged)"}
        return {"time.target_reached": str(self.to_target is not None).lower()}


def timer(trainer_cfg: DictConfig) -> CostTimer:
    metric = trainer_cfg.get("target_metric")
    if metric is None:
        return CostTimer()
    return CostTimer(metric, trainer_cfg.target_value, trainer_cfg.get("target_mode", "max"))

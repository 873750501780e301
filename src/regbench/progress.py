"""One progress bar over epochs (not steps): cheap, and readable in logs.

The bar shows each epoch's ``train/`` and ``val/`` means, the values MLflow records for
that epoch. Lightning calls a callback's ``on_train_epoch_end`` *before* the module's
(only checkpoint and early-stopping callbacks run after it), and the module logs its
``train/`` means in its own ``on_train_epoch_end``: read there, the bar would show the
previous epoch's training loss. So an epoch is drawn when the next one starts, and the
last one when training ends; nothing runs in between.
"""

from __future__ import annotations

import sys

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ProgressBar
from tqdm.auto import tqdm

#: logged metric -> its short name on the bar
SHOWN = {"train/loss": "tr_loss", "train/acc": "tr_acc", "val/loss": "va_loss", "val/acc": "va_acc"}


def postfix(metrics) -> dict[str, str]:
    """The bar's ``tr_loss=1.165 ...`` fields from logged metrics (tensors or floats)."""
    return {short: f"{float(metrics[k]):.3f}" for k, short in SHOWN.items() if k in metrics}


class EpochProgressBar(ProgressBar):
    def __init__(self) -> None:
        super().__init__()
        self._enabled = True
        self.bar: tqdm | None = None
        self._drawn = 0  # epochs drawn so far

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._enabled:
            self._drawn = 0
            self.bar = tqdm(
                total=trainer.max_epochs,
                desc="epochs",
                unit="ep",
                file=sys.stderr,
                dynamic_ncols=True,
                leave=True,
                mininterval=0,  # an epoch is a rare event: draw every one
            )

    def _draw(self, trainer: pl.Trainer, done: int) -> None:
        """Advance to ``done`` finished epochs, showing the metrics logged for the last."""
        if self.bar is None or done <= self._drawn:
            return
        self.bar.set_postfix(postfix(trainer.callback_metrics), refresh=False)
        self.bar.update(done - self._drawn)
        self._drawn = done

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._draw(trainer, trainer.current_epoch)  # epochs 0 .. current_epoch - 1 are done

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._draw(trainer, trainer.current_epoch)  # the epoch counter is past the last one
        self._close()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exc) -> None:
        """Ctrl-C or an error mid-epoch: end the bar's line, so what is printed next
        starts on a fresh line instead of after the bar."""
        self._close()

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class GroupEpochBar:
    """The epoch bar of a batched group (:mod:`regbench.batched`): named after the group,
    with the mean over its models of each epoch's ``train/`` and ``val/`` metrics.

    ``seen(metrics)`` takes one model's values as they are logged; ``epoch_done(n)`` draws
    ``n`` finished epochs with the means of what was seen since the last draw."""

    def __init__(self, name: str, n_models: int, total: int) -> None:
        models = f"{n_models} model{'s' if n_models != 1 else ''}"
        means = ", means" if n_models > 1 else ""
        self.bar: tqdm | None = tqdm(
            total=total,
            desc=f"{name} ({models}, batched{means})",
            unit="ep",
            file=sys.stderr,
            dynamic_ncols=True,
            leave=True,
            mininterval=0,  # an epoch is a rare event: draw every one
        )
        self._sums: dict[str, list[float]] = {}
        self._drawn = 0

    def seen(self, metrics) -> None:
        for k in SHOWN:
            if k in metrics:
                self._sums.setdefault(k, []).append(float(metrics[k]))

    def epoch_done(self, done: int) -> None:
        if self.bar is None or done <= self._drawn:
            return
        means = {k: sum(v) / len(v) for k, v in self._sums.items() if v}
        self.bar.set_postfix(postfix(means), refresh=False)
        self.bar.update(done - self._drawn)
        self._drawn, self._sums = done, {}

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

"""One progress bar over epochs (not steps): cheap, and readable in logs."""

from __future__ import annotations

import sys

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ProgressBar
from tqdm.auto import tqdm


class EpochProgressBar(ProgressBar):
    def __init__(self) -> None:
        super().__init__()
        self._enabled = True
        self.bar: tqdm | None = None

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._enabled:
            self.bar = tqdm(
                total=trainer.max_epochs,
                desc="epochs",
                unit="ep",
                file=sys.stderr,
                dynamic_ncols=True,
                leave=True,
            )

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.bar is not None:
            m = trainer.callback_metrics
            shown = {
                k.split("/", 1)[0][:2] + "_" + k.split("/")[-1]: f"{float(v):.3f}"
                for k, v in m.items()
                if k in ("train/loss", "train/acc", "val/loss", "val/acc")
            }
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(1)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

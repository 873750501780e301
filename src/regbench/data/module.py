"""LightningDataModule over :class:`Splits`: tensors on the training device, batches by
slicing, uint8 images turned into normalised floats after the batch reaches the device."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import Tensor

from regbench.data import Splits
from regbench.data.batches import BatchGroups, TensorBatches, limit_batches


class TensorDataModule(pl.LightningDataModule):
    """``steps_per_call > 1``: the train loader yields lists of that many mini-batches
    (see :class:`~regbench.module.RegModule`), and ``limit_train_batches`` counts
    mini-batches, not lists, so it means the same thing in both modes."""

    def __init__(
        self,
        splits: Splits,
        batch_size: int,
        seed: int,
        eval_batch_size: int = 1000,
        steps_per_call: int = 1,
        limit_train_batches: int | float = 1.0,
    ):
        super().__init__()
        self.splits = splits
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.seed = seed
        self.steps_per_call = steps_per_call
        self.limit_train_batches = limit_train_batches
        self._train: TensorBatches | BatchGroups | None = None
        self.mean = self.std = None
        if splits.mean is not None:
            shape = (1, -1) + (1,) * (splits.x_train.dim() - 2)  # broadcast over (B, C, ...)
            # uint8 pixels: statistics on the 0-255 scale.
            self.mean = torch.tensor(splits.mean).view(shape) * 255.0
            self.std = torch.tensor(splits.std).view(shape) * 255.0

    def _device(self) -> torch.device:
        trainer = self.trainer
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def train_dataloader(self) -> TensorBatches:
        # One iterable for the whole fit: its epoch counter drives the shuffle order.
        if self._train is None:
            s = self.splits
            batches = TensorBatches(
                s.x_train, s.y_train, self.batch_size, shuffle=True, seed=self.seed
            )
            if self.steps_per_call > 1:
                batches.limit = limit_batches(len(batches), self.limit_train_batches)
                self._train = BatchGroups(batches, self.steps_per_call)
            else:  # Lightning applies limit_train_batches itself
                self._train = batches
        return self._train.to(self._device())

    def val_dataloader(self) -> TensorBatches | list:
        s = self.splits
        if len(s.y_val) == 0:
            return []
        return TensorBatches(s.x_val, s.y_val, self.eval_batch_size).to(self._device())

    def test_dataloader(self) -> TensorBatches:
        s = self.splits
        return TensorBatches(s.x_test, s.y_test, self.eval_batch_size).to(self._device())

    def normalize(self, x: Tensor) -> Tensor:
        if self.mean is None:
            return x
        if self.mean.device != x.device:  # moved once, not copied every batch
            self.mean, self.std = self.mean.to(x.device), self.std.to(x.device)
        return (x.float() - self.mean) / self.std

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        # The tensors already live on the trainer's device (see the dataloaders), so this
        # is a no-op `.to`; Lightning's generic collection walk would cost ~0.2 ms a step.
        if isinstance(batch, list):  # a chunk of (x, y) pairs
            return [self.transfer_batch_to_device(b, device, dataloader_idx) for b in batch]
        x, y = batch
        return x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if isinstance(batch, list):
            return [(self.normalize(x), y) for x, y in batch]
        x, y = batch
        return self.normalize(x), y

"""Data sets held as tensors in memory, split into train/val/test, batched by slicing."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch
from omegaconf import DictConfig
from torch import Tensor

from regbench.errors import choice, in_range, positive_int
from regbench.registry import Registry
from regbench.streams import Stream

#: data set name -> loader(cfg.data) -> (x_train, y_train, x_test, y_test, info dict)
DATASETS = Registry("dataset")


@dataclass
class Splits:
    """Tensors of one data set. ``noisy`` marks train labels replaced by label noise."""

    name: str
    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int
    noisy: Tensor
    mean: tuple[float, ...] | None = None  # per-channel, for uint8 images
    std: tuple[float, ...] | None = None
    info: dict = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def fingerprint(self) -> str:
        """Hash of the train inputs and the (possibly noisy) train labels."""
        h = hashlib.sha256()
        for t in (self.x_train, self.y_train):
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]


def build_data(cfg: DictConfig, seed: int) -> Splits:
    """Load ``cfg.name``, carve the validation split and apply label noise, from ``seed``."""
    from regbench.data import mnist1d, synthetic, vision  # noqa: F401  (register loaders)
    from regbench.data.noise import MODES, corrupt_labels

    loader = DATASETS.get(cfg.name, "data.name")
    in_range("data.label_noise", cfg.label_noise, 0.0, 1.0)
    choice("data.label_noise_mode", cfg.label_noise_mode, MODES)
    in_range("data.val_fraction", cfg.val_fraction, 0.0, 1.0, hi_open=True)
    positive_int("data.batch_size", cfg.batch_size)
    x, y, x_test, y_test, info = loader(cfg)
    num_classes = int(info["num_classes"])

    # The run's streams (docs/ARCHITECTURE.md, "Randomness"): the split and the label noise
    # each their own, so changing the noise leaves the split as it is.
    data = Stream.of_run(seed).child("data")
    perm = torch.randperm(len(y), generator=data.child("split").fresh())
    n_val = int(round(cfg.val_fraction * len(y)))
    val_idx, train_idx = perm[:n_val].sort().values, perm[n_val:].sort().values
    noise = data.child("label_noise").fresh()
    y_train, noisy = corrupt_labels(
        y[train_idx], cfg.label_noise, num_classes, noise, cfg.label_noise_mode
    )
    return Splits(
        name=cfg.name,
        x_train=x[train_idx],
        y_train=y_train,
        x_val=x[val_idx],
        y_val=y[val_idx],
        x_test=x_test,
        y_test=y_test,
        num_classes=num_classes,
        noisy=noisy,
        mean=info.get("mean"),
        std=info.get("std"),
        info=info,
    )

"""Image data sets through torchvision, kept as uint8 tensors (N, C, H, W).

Normalisation to float and augmentation happen batched on the training device
(see :mod:`regbench.data.module`), so nothing is decoded per sample per epoch.
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig

from regbench.data import DATASETS
from regbench.errors import ConfigError

# Per-channel statistics of the training sets (0-1 scale), the usual published values.
STATS = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
}
CLASSES = {"mnist": 10, "fashion_mnist": 10, "cifar10": 10, "cifar100": 100, "svhn": 10}
SHAPES = {  # (C, H, W) of one image
    "mnist": (1, 28, 28),
    "fashion_mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
    "cifar100": (3, 32, 32),
    "svhn": (3, 32, 32),
}


def _open(name: str, root: Path, train: bool, download: bool):
    import torchvision.datasets as tvd

    cls = {
        "mnist": tvd.MNIST,
        "fashion_mnist": tvd.FashionMNIST,
        "cifar10": tvd.CIFAR10,
        "cifar100": tvd.CIFAR100,
        "svhn": tvd.SVHN,
    }[name]
    if name == "svhn":
        return cls(str(root), split="train" if train else "test", download=download)
    return cls(str(root), train=train, download=download)


def _to_tensors(name: str, ds) -> tuple[torch.Tensor, torch.Tensor]:
    if name in ("mnist", "fashion_mnist"):
        x = ds.data.unsqueeze(1)  # (N, 28, 28) -> (N, 1, 28, 28)
        y = torch.as_tensor(ds.targets)
    elif name == "svhn":
        x = torch.as_tensor(ds.data)  # already (N, 3, 32, 32)
        y = torch.as_tensor(ds.labels)
    else:
        x = torch.as_tensor(ds.data).permute(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
        y = torch.as_tensor(ds.targets)
    return x.contiguous().to(torch.uint8), y.to(torch.long)


def load_vision(name: str, data_dir: str | Path, download: bool):
    root = Path(data_dir).expanduser()
    try:
        train = _open(name, root, True, download)
        test = _open(name, root, False, download)
    except RuntimeError as e:
        if download:
            raise
        raise ConfigError(
            f"data.download=false and the {name} files are missing or corrupt under "
            f"{root} ({e}); set data.download=true or point data.data_dir at them"
        ) from None
    x, y = _to_tensors(name, train)
    x_test, y_test = _to_tensors(name, test)
    mean, std = STATS[name]
    return x, y, x_test, y_test, {"num_classes": CLASSES[name], "mean": mean, "std": std}


def _register(name: str, *aliases: str) -> None:
    @DATASETS.register(name, *aliases)
    def _load(cfg: DictConfig):
        return load_vision(name, cfg.data_dir, bool(cfg.download))


_register("mnist")
_register("fashion_mnist", "fashionmnist", "fmnist")
_register("cifar10", "cifar-10")
_register("cifar100", "cifar-100")
_register("svhn")

"""MNIST-1D (Greydanus & Kobak 2020, arXiv 2011.14439), generated locally from a seed.

Generation takes a few seconds, so each (n_train, n_test, seed) set is cached as a
tensor file under the data folder; the cache is keyed by the generator's arguments.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

import torch
from omegaconf import DictConfig

from regbench.data import DATASETS
from regbench.errors import positive_int
from regbench.paths import data_dir


def _generate(n_train: int, n_test: int, seed: int) -> dict[str, torch.Tensor]:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = n_train + n_test
    args.train_split = n_train / (n_train + n_test)
    args.seed = seed
    d = make_dataset(args)
    return {
        "x": torch.as_tensor(d["x"], dtype=torch.float32),
        "y": torch.as_tensor(d["y"], dtype=torch.long),
        "x_test": torch.as_tensor(d["x_test"], dtype=torch.float32),
        "y_test": torch.as_tensor(d["y_test"], dtype=torch.long),
    }


def load_mnist1d(n_train: int = 4000, n_test: int = 1000, seed: int = 42, cache: bool = True):
    key = json.dumps({"n_train": n_train, "n_test": n_test, "seed": seed, "v": 1})
    path = Path(data_dir()) / "mnist1d" / f"{hashlib.sha1(key.encode()).hexdigest()[:12]}.pt"
    if cache and path.exists():
        d = torch.load(path)
    else:
        d = _generate(n_train, n_test, seed)
        if cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            # A unique name without touching torch's RNG: a draw here would make the first
            # run in a fresh checkout (cache miss) initialise differently from later runs.
            tmp = path.with_suffix(f".tmp{os.getpid()}-{uuid.uuid4().hex}")
            torch.save(d, tmp)
            tmp.replace(path)  # atomic: parallel workers may generate the same file
    return d


@DATASETS.register("mnist1d", "mnist_1d")
def mnist1d(cfg: DictConfig):
    positive_int("data.n_train", cfg.n_train)
    positive_int("data.n_test", cfg.n_test)
    d = load_mnist1d(cfg.n_train, cfg.n_test, cfg.generator_seed)
    # (N, 40) signals; models that want channels see (N, 1, 40) through their stem.
    return d["x"], d["y"], d["x_test"], d["y_test"], {"num_classes": 10}

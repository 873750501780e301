"""Synthetic data sets, generated in memory from a seed (no files, no downloads).

``random_images``: uniform uint8 images (N, C, H, W) with uniform random labels, the shape
and class count of a real vision set, normalised with that set's statistics
(``data.like``). Nothing in it is learnable: it measures cost (``regbench bench``) and
stands in for a vision set whose files are not on the machine (the test that trains
every config for one batch).
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from regbench.data import DATASETS
from regbench.data.vision import STATS
from regbench.errors import choice, positive_int


@DATASETS.register("random_images")
def random_images(cfg: DictConfig):
    positive_int("data.n_train", cfg.n_train)
    positive_int("data.n_test", cfg.n_test)
    positive_int("data.num_classes", cfg.num_classes)
    choice("data.like", cfg.like, tuple(STATS))
    g = torch.Generator().manual_seed(int(cfg.generator_seed))
    shape, k = tuple(cfg.shape), int(cfg.num_classes)

    def draw(m: int):
        x = torch.randint(0, 256, (m, *shape), generator=g, dtype=torch.uint8)  # (m, C, H, W)
        return x, torch.randint(0, k, (m,), generator=g)

    (x, y), (x_test, y_test) = draw(int(cfg.n_train)), draw(int(cfg.n_test))
    mean, std = STATS[cfg.like]
    return x, y, x_test, y_test, {"num_classes": k, "mean": mean, "std": std}

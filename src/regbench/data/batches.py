"""Mini-batches sliced from in-memory tensors in a seeded order.

No Dataset/DataLoader/collate in the hot path: each epoch permutes the tensors once
(one gather) and yields contiguous slices. The order of epoch ``e`` depends only on
``(seed, e)``, so a hand-written loop and the Lightning run see the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor


class TensorBatches:
    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        assert len(x) == len(y), "x and y must have the same length"
        self.x, self.y = x, y
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.epoch = 0

    def to(self, device: torch.device | str) -> TensorBatches:
        self.x, self.y = self.x.to(device), self.y.to(device)
        return self

    def __len__(self) -> int:
        n = len(self.y)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self, epoch: int) -> Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.y), generator=g)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        x, y = self.x, self.y
        if self.shuffle:
            perm = self.order(self.epoch).to(x.device)
            x, y = x[perm], y[perm]
            self.epoch += 1
        bs = self.batch_size
        for i in range(len(self)):
            yield x[i * bs : (i + 1) * bs], y[i * bs : (i + 1) * bs]

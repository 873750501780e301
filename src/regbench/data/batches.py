"""Mini-batches sliced from in-memory tensors in a seeded order.

No Dataset/DataLoader/collate in the hot path: each epoch permutes the tensors once
(one gather) and yields contiguous slices. The order of epoch ``e`` depends only on
``(seed, e)``: the run's ``data/order`` stream at counter ``e`` (docs/ARCHITECTURE.md,
"Randomness"), so a hand-written loop, the Lightning run and a batched group see the
same batches.
:class:`BatchGroups` groups consecutive mini-batches, for modules that run several optimizer
steps per Lightning step (``trainer.steps_per_call``).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from regbench.streams import Stream


class TensorBatches:
    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        limit: int | None = None,
    ) -> None:
        assert len(x) == len(y), "x and y must have the same length"
        self.x, self.y = x, y
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.stream = Stream.of_run(self.seed).child("data", "order")
        self.drop_last = drop_last
        self.limit = limit  # at most this many batches an epoch (Lightning's limit_*_batches)
        self.epoch = 0

    def to(self, device: torch.device | str) -> TensorBatches:
        self.x, self.y = self.x.to(device), self.y.to(device)
        return self

    def __len__(self) -> int:
        n = len(self.y)
        full = n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return full if self.limit is None else min(full, self.limit)

    def order(self, epoch: int) -> Tensor:
        return torch.randperm(len(self.y), generator=self.stream.generator("cpu", epoch))

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        x, y = self.x, self.y
        if self.shuffle:
            perm = self.order(self.epoch).to(x.device)
            x, y = x[perm], y[perm]
            self.epoch += 1
        bs = self.batch_size
        for i in range(len(self)):
            yield x[i * bs : (i + 1) * bs], y[i * bs : (i + 1) * bs]


def limit_batches(n: int, limit: int | float) -> int:
    """Lightning's reading of ``limit_train_batches``: an int is a count, a float a
    fraction of the ``n`` batches."""
    if isinstance(limit, bool) or not isinstance(limit, int | float) or limit < 0:
        raise ValueError(f"limit must be an int >= 0 or a fraction in [0, 1], got {limit!r}")
    if isinstance(limit, int):
        return min(n, limit)
    if limit > 1:
        raise ValueError(f"a fractional limit must be in [0, 1], got {limit!r}")
    return int(n * limit)


class BatchGroups:
    """Consecutive mini-batches of a :class:`TensorBatches`, ``size`` at a time (the
    last chunk of an epoch may be shorter): lists of ``(x, y)`` pairs."""

    def __init__(self, batches: TensorBatches, size: int) -> None:
        if size < 1:
            raise ValueError(f"chunk size must be >= 1, got {size}")
        self.batches, self.size = batches, int(size)

    def to(self, device: torch.device | str) -> BatchGroups:
        self.batches.to(device)
        return self

    def __len__(self) -> int:
        return -(-len(self.batches) // self.size)

    def __iter__(self) -> Iterator[list[tuple[Tensor, Tensor]]]:
        chunk: list[tuple[Tensor, Tensor]] = []
        for pair in self.batches:
            chunk.append(pair)
            if len(chunk) == self.size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

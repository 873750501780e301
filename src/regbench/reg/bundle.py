"""The hook contract of a regularizer and the bundle the ``reg`` config group builds.

A regularizer plugs in by kind (docs/ARCHITECTURE.md, "Regularizers"), through one of
these hooks, each given what that kind may need:

- loss term, :class:`Penalty`: ``penalty(model, logits, targets, step) -> Tensor``,
  added to the data loss and logged as ``train/reg/<name>``. ``logits`` (B, K) are the
  model's outputs on the (transformed) batch, ``targets`` the (transformed) targets:
  (B,) class indices or (B, K) probabilities; ``step`` counts optimizer steps from 0.
  Weight penalties ignore all but ``model``; label smoothing and the confidence penalty
  use the logits and targets.
- constraint: ``constrain(model)`` after every optimizer step, under ``no_grad``.
- batch transform: ``transform(x, targets) -> (x, targets)`` on training batches.
- procedure: a Lightning callback.

``num_classes`` is set before the factories run, so a regularizer that needs it (mixup's
soft targets) reads it from the bundle instead of from the data module. ``entries`` keeps
what each ``reg`` entry added, by entry name: a batched group asks those objects whether
and how they stack (:mod:`regbench.reg.stacked`), and each one that draws random numbers
gets the stream ``("reg", entry name, index)`` of the run (:mod:`regbench.streams`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import pytorch_lightning as pl
from torch import Tensor, nn

from regbench.reg.inference import Inference
from regbench.streams import Clock, Stream, bind


class Penalty(Protocol):
    def __call__(self, model: nn.Module, logits: Tensor, targets: Tensor, step: int) -> Tensor: ...


Constraint = Callable[[nn.Module], None]
BatchTransform = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


@dataclass
class Regularizers:
    """What the ``reg`` config group contributes, by where it plugs in."""

    penalties: dict[str, Penalty] = field(default_factory=dict)  # loss terms
    constraints: list[Constraint] = field(default_factory=list)  # after optimizer.step
    transforms: list[BatchTransform] = field(default_factory=list)  # train batches
    callbacks: list[pl.Callback] = field(default_factory=list)  # procedures
    inference: Inference = field(default_factory=Inference)  # test-time stochastic layers
    num_classes: int | None = None
    entries: dict[str, list[object]] = field(default_factory=dict)  # what each entry added

    def parts(self) -> list[object]:
        """Every object added, in hook order: penalties, constraints, transforms, callbacks."""
        return [*self.penalties.values(), *self.constraints, *self.transforms, *self.callbacks]

    def bind(self, stream: Stream, clock: Clock) -> None:
        """Give every part that draws its own stream below ``stream`` and the run's clock."""
        for name, objs in self.entries.items():
            for i, obj in enumerate(objs):
                bind(obj, stream.child(name, i), clock)

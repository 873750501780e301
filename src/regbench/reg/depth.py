"""Stochastic depth: drop whole residual branches per sample.

Huang, Sun, Liu, Sedra, Weinberger, "Deep Networks with Stochastic Depth", ECCV 2016
(arXiv 1603.09382). Block ``l`` of ``L`` keeps its residual branch with *survival*
probability ``p_l = 1 - (l / L) (1 - p_L)`` (linear decay, eq. 4), so the first block
almost always survives and the last survives with ``p_L`` (0.5 in the paper).

Convention (as in the paper, not timm's): in training the branch is kept with
probability ``p`` and *not* rescaled; at test time it is multiplied by ``p``:

    train: x + b * f(x),  b ~ Bernoulli(p) per sample
    test:  x + p * f(x)

``survival_prob`` is a *keep* probability (unlike the dropout rates in config, which
are drop probabilities).

Two modes (``model.drop_path_mode``):

- ``sample`` (default): one draw per sample; every branch is still computed, so it
  regularizes but saves no time.
- ``batch``: one draw per mini-batch, as Huang et al. do; a dropped block's branch is
  not run at all (the residual block asks :meth:`DropPath.skip` before calling it), so
  it costs no forward or backward compute: the source of their training speedup.

Per sample, the keep draw is multiplicative noise (:class:`~regbench.reg.stacked.Noise`)
of shape (B, 1, ..., 1) from the layer's stream, so a batched group draws each model's
the same way. Per batch, the stacked form (:class:`StackedSkip`) asks every model's layer
for its decision of the step (:meth:`DropPath.dropped`, the same host draw as alone) and
multiplies each model's branch output by its keep bit, so a dropped model's block adds an
exact zero. Alone, a dropped block's parameters get no gradient at all (``grad`` None),
so ``torch.optim`` leaves them out of the step: no momentum or weight decay, no Adam step
count, and the BatchNorm layers in the branch keep their running statistics. The batched
program reproduces all three from the keep bits (:mod:`regbench.batched.program`,
:mod:`regbench.batched.optim`); when every model of a group drops a block, its branch is
not run at all.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from regbench.errors import choice, in_range, positive_int
from regbench.reg.dropout import keep_mask
from regbench.reg.stacked import NOISE, SKIP, Noise, PerModel, lead_view


def drop_path(
    x: Tensor, survival: float, training: bool, generator: torch.Generator | None = None
) -> Tensor:
    """The branch output ``x`` (B, ...) kept per sample with prob. ``survival`` in
    training (no rescaling), scaled by ``survival`` at test."""
    if survival >= 1.0:
        return x
    return DropPath(survival).noised(x, training, generator)


MODES = ("sample", "batch")


class DropPath(Noise, nn.Module):
    """Module form of :func:`drop_path`; wrap a residual branch's output with it. In
    ``batch`` mode the caller asks :meth:`skip` first and runs the branch only if the
    block survives this mini-batch."""

    stochastic = True  # put in training mode by Monte-Carlo inference (reg/inference.py)

    def __init__(self, survival_prob: float, mode: str = "sample") -> None:
        super().__init__()
        in_range("survival_prob", survival_prob, 0.0, 1.0, lo_open=True)
        choice("model.drop_path_mode", mode, MODES)
        self.survival_prob = float(survival_prob)
        self.mode = mode

    @property
    def param(self) -> float:
        return self.survival_prob

    @property
    def eval_scale(self) -> float:
        return self.survival_prob

    def noise_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        # One draw per sample, broadcast over the other dims: (B, 1, ..., 1).
        return (shape[0],) + (1,) * (len(shape) - 1)

    shape_noise = staticmethod(keep_mask)  # kept or not, no rescaling

    def skip(self) -> bool:
        """Batch mode in training: one draw for the whole mini-batch; True means the
        block is dropped and its branch must not be computed."""
        if self.mode != "batch" or not self.training or self.survival_prob >= 1.0:
            return False
        return self.dropped()

    def dropped(self) -> bool:
        """This step's per-batch decision (the clock's counter): True drops the block. A
        host draw, so no device sync; the batched form asks every model's layer the same."""
        return self.host().random() >= self.survival_prob

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == "batch" and self.training:
            return x  # survived this mini-batch (skip() said so): kept, not rescaled
        return self.noised(x, self.training)

    def stack_key(self) -> str:
        return NOISE + "drop_path" if self.mode == "sample" else SKIP + "drop_path"

    @classmethod
    def stacked(cls, layers):
        """Per sample: the noise form (:class:`~regbench.reg.stacked.StackedNoise`); per
        batch: :class:`StackedSkip`."""
        real = [m for m in layers if isinstance(m, DropPath)]
        return StackedSkip(layers) if real and real[0].mode == "batch" else super().stacked(layers)

    def extra_repr(self) -> str:
        return f"survival_prob={self.survival_prob:g}, mode={self.mode}"


class StackedSkip:
    """S per-batch DropPath layers of one residual block (``nn.Identity``: survival 1, never
    dropped). ``keeps()`` is every model's decision of the step, drawn by its own layer as
    alone; ``form(x, training, keep)`` multiplies each model's branch output by its keep
    bit in training (``keep`` (S,) 0/1 on x's device; None when all are kept) and by its
    survival probability at eval, as the single form. x: (S, ...), models on dim 0."""

    def __init__(self, layers) -> None:
        self.layers: list[DropPath | None] = [
            m if isinstance(m, DropPath) else None for m in layers
        ]
        self.scales = PerModel([1.0 if m is None else m.eval_scale for m in self.layers])

    def keeps(self) -> list[bool]:
        return [m is None or not m.dropped() for m in self.layers]

    def __call__(self, x: Tensor, training: bool, keep: Tensor | None = None) -> Tensor:
        if training:
            return x if keep is None else x * lead_view(keep, x.dim())
        return x * lead_view(self.scales.on(x), x.dim())


def linear_decay_survival(num_blocks: int, p_last: float, key: str = "p_last") -> list[float]:
    """``[p_1, ..., p_L]`` with ``p_l = 1 - (l / L)(1 - p_last)`` (Huang et al., eq. 4).
    ``key`` names the config entry of ``p_last`` in the error for a bad value."""
    positive_int("num_blocks", num_blocks)
    in_range(key, p_last, 0.0, 1.0, lo_open=True)
    return [1.0 - (i / num_blocks) * (1.0 - p_last) for i in range(1, num_blocks + 1)]


def uniform_survival(num_blocks: int, p_last: float, key: str = "p_last") -> list[float]:
    """The same survival for every block, with the expected depth of the linear rule:
    sum_l p_l / L = 1 - (L + 1) / (2 L) (1 - p_last) (Huang et al. compare both, fig. 8)."""
    ps = linear_decay_survival(num_blocks, p_last, key)
    return [sum(ps) / num_blocks] * num_blocks

"""DropConnect: drop individual *weights* instead of activations.

Wan, Zeiler, Zhang, LeCun, Fergus, "Regularization of Neural Networks using
DropConnect", ICML 2013. Each weight is zeroed with probability ``rate`` (a *drop*
probability, PyTorch's convention; the paper writes p for the retain probability).

Here one mask is drawn per forward pass (shared by the mini-batch, where the paper
draws one per sample), and kept weights are scaled by ``1 / (1 - rate)`` ("inverted"
scaling, as for inverted dropout), so the expected weight equals the weight and the
layer is deterministic at eval: ``W`` itself is used. The paper's Gaussian
moment-matching inference is not implemented; Monte-Carlo averaging over masks is
available through ``model.test_mode=mc`` (see :mod:`regbench.reg.inference`).

The mask is multiplicative noise on the weight (:class:`~regbench.reg.stacked.Noise`,
the same shaping as inverted dropout), drawn from the layer's stream; in a batched group
each model's mask is drawn the same way and stacked (S, out, in).
:func:`dropconnect_weight` works on any weight tensor; a conv variant is a subclass of
``nn.Conv2d`` calling ``self._conv_forward(x, self.masked_weight(), self.bias)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from regbench.reg.dropout import BernoulliDropout
from regbench.reg.stacked import NOISE, Noise


def dropconnect_weight(
    w: Tensor, rate: float, training: bool, generator: torch.Generator | None = None
) -> Tensor:
    """``w`` with each entry dropped with prob. ``rate`` and survivors scaled by
    ``1/(1-rate)`` in training; ``w`` unchanged at eval."""
    if rate == 0.0 or not training:
        return w
    raw = torch.empty_like(w).uniform_(generator=generator)  # same shape as w
    return w * BernoulliDropout.shape_noise(raw, 1.0 - rate)


class DropConnectMixin(Noise):
    """Shared by DropConnect layers: a ``rate`` and :meth:`masked_weight`; the noise is
    inverted dropout's, on the weight."""

    stochastic = True  # put in training mode by Monte-Carlo inference
    rate: float
    weight: nn.Parameter
    training: bool
    shape_noise = staticmethod(BernoulliDropout.shape_noise)

    @property
    def param(self) -> float:
        return 1.0 - self.rate  # keep

    def masked_weight(self) -> Tensor:
        if self.rate == 0.0:
            return self.weight
        return self.noised(self.weight, self.training)

    def stack_key(self) -> str:
        return NOISE + "dropconnect"


class DropConnectLinear(DropConnectMixin, nn.Linear):
    """``nn.Linear`` whose weight (out, in) is masked per forward pass in training."""

    def __init__(self, in_features: int, out_features: int, rate: float, bias: bool = True):
        super().__init__(in_features, out_features, bias=bias)
        self.rate = float(rate)

    def forward(self, x: Tensor) -> Tensor:  # (B, in) -> (B, out)
        return F.linear(x, self.masked_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rate={self.rate:g}"

"""The dropout family, each a pure function plus a thin module.

Rates are *drop* probabilities (PyTorch's convention): ``rate=0.5`` zeroes half the
units. Srivastava et al. and Li et al. write ``p`` for the *retain* probability,
``p = 1 - rate``; read the papers with that in mind.

- bernoulli (inverted): Srivastava et al. 2014, JMLR 15(56); training output scaled by
  1/(1-rate) so the mean is preserved and inference is the identity.
- vanilla: the original formulation; no scaling in training, outputs multiplied by the
  retain probability (1-rate) at test ("weight scaling inference rule").
- gaussian: multiplicative noise ``x * (1 + sigma * eps)``, eps ~ N(0, 1), with
  sigma^2 = rate / (1 - rate), the variance of inverted Bernoulli dropout
  (Srivastava et al. 2014, section 10).
- uout: Li et al. 2019 (arXiv 1801.05134), ``x + x * r``, r ~ U(-b, b) with b = rate;
  its variance ratio on zero-mean input before BN is 3 / (3 + b^2).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from regbench.registry import Registry


def bernoulli_dropout(x: Tensor, rate: float, training: bool) -> Tensor:
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    return x * torch.empty_like(x).bernoulli_(keep).div_(keep)


def vanilla_dropout(x: Tensor, rate: float, training: bool) -> Tensor:
    if rate == 0.0:
        return x
    if not training:
        return x * (1.0 - rate)
    return x * torch.empty_like(x).bernoulli_(1.0 - rate)


def gaussian_dropout(x: Tensor, rate: float, training: bool) -> Tensor:
    if rate == 0.0 or not training:
        return x
    sigma = (rate / (1.0 - rate)) ** 0.5
    return x * torch.randn_like(x).mul_(sigma).add_(1.0)


def uout(x: Tensor, rate: float, training: bool) -> Tensor:
    if rate == 0.0 or not training:
        return x
    return x + x * torch.empty_like(x).uniform_(-rate, rate)


class _Dropout(nn.Module):
    fn = staticmethod(bernoulli_dropout)
    stochastic = True  # put in training mode by Monte-Carlo inference (reg/inference.py)

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = float(rate)

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x, self.rate, self.training)

    def extra_repr(self) -> str:
        return f"rate={self.rate:g}"


class BernoulliDropout(_Dropout):
    fn = staticmethod(bernoulli_dropout)


class VanillaDropout(_Dropout):
    fn = staticmethod(vanilla_dropout)


class GaussianDropout(_Dropout):
    fn = staticmethod(gaussian_dropout)


class Uout(_Dropout):
    fn = staticmethod(uout)


DROPOUTS = Registry("dropout kind")
DROPOUTS.register("bernoulli", "inverted", "dropout")(BernoulliDropout)
DROPOUTS.register("vanilla")(VanillaDropout)
DROPOUTS.register("gaussian", "gauss")(GaussianDropout)
DROPOUTS.register("uout", "uniform")(Uout)


def make_dropout(kind: str, rate: float, key: str = "model.dropout_kind") -> nn.Module:
    """A dropout module of ``kind`` at drop rate ``rate``; an empty slot when rate is 0."""
    cls = DROPOUTS.get(kind, key)
    return nn.Identity() if rate == 0.0 else cls(rate)

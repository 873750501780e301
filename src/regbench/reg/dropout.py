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

Every kind is multiplicative noise, ``x * noise`` in training (:class:`~regbench.reg.
stacked.Noise`): a Bernoulli(keep) mask is a uniform draw below ``keep``; the Gaussian
noise ``1 + sigma * eps``; Uout's ``1 + r`` with ``r = (2u - 1) b``. The modules draw
from their layer's stream (:mod:`regbench.streams`); their stacked form draws each
model's noise the same way and stacks it (:class:`~regbench.reg.stacked.StackedNoise`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from regbench.reg.stacked import NOISE, Noise
from regbench.registry import Registry


def keep_mask(raw: Tensor, keep: float | Tensor) -> Tensor:
    """Uniform draws in [0, 1) -> Bernoulli(keep) as 0/1 floats, in place."""
    return raw.lt_(keep)


class _Dropout(Noise, nn.Module):
    stochastic = True  # put in training mode by Monte-Carlo inference (reg/inference.py)
    kind = ""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = float(rate)

    def forward(self, x: Tensor) -> Tensor:
        return self.noised(x, self.training)

    def stack_key(self) -> str:
        return NOISE + self.kind

    def extra_repr(self) -> str:
        return f"rate={self.rate:g}"


class BernoulliDropout(_Dropout):
    """Inverted dropout: noise ``mask / keep``, mask ~ Bernoulli(keep)."""

    kind = "bernoulli"

    @property
    def param(self) -> float:
        return 1.0 - self.rate  # keep

    @staticmethod
    def shape_noise(raw: Tensor, keep: float | Tensor) -> Tensor:
        return keep_mask(raw, keep).div_(keep)


class VanillaDropout(_Dropout):
    """Noise ``mask`` in training, ``x * keep`` at test."""

    kind = "vanilla"

    @property
    def param(self) -> float:
        return 1.0 - self.rate

    @property
    def eval_scale(self) -> float:
        return 1.0 - self.rate

    @staticmethod
    def shape_noise(raw: Tensor, keep: float | Tensor) -> Tensor:
        return keep_mask(raw, keep)


class GaussianDropout(_Dropout):
    """Noise ``1 + sigma * eps``, eps ~ N(0, 1), sigma^2 = rate / (1 - rate)."""

    kind = "gaussian"
    NEUTRAL = 0.0  # sigma

    @property
    def param(self) -> float:
        return (self.rate / (1.0 - self.rate)) ** 0.5

    def draw(self, out: Tensor, generator: torch.Generator | None) -> Tensor:
        return out.normal_(generator=generator)

    @staticmethod
    def shape_noise(raw: Tensor, sigma: float | Tensor) -> Tensor:
        return raw.mul_(sigma).add_(1.0)


class Uout(_Dropout):
    """Noise ``1 + r``, r = (2u - 1) b ~ U(-b, b), b = rate."""

    kind = "uout"
    NEUTRAL = 0.0  # b

    @property
    def param(self) -> float:
        return self.rate

    @staticmethod
    def shape_noise(raw: Tensor, b: float | Tensor) -> Tensor:
        return raw.mul_(2.0).sub_(1.0).mul_(b).add_(1.0)


def _functional(cls: type[_Dropout]):
    def fn(x: Tensor, rate: float, training: bool, generator: torch.Generator | None = None):
        """The module's output for ``x``; draws from ``generator`` (default: torch's)."""
        return x if rate == 0.0 else cls(rate).noised(x, training, generator)

    fn.__name__ = f"{cls.kind}_dropout"
    return fn


bernoulli_dropout = _functional(BernoulliDropout)
vanilla_dropout = _functional(VanillaDropout)
gaussian_dropout = _functional(GaussianDropout)
uout = _functional(Uout)


DROPOUTS = Registry("dropout kind")
DROPOUTS.register("bernoulli", "inverted", "dropout")(BernoulliDropout)
DROPOUTS.register("vanilla")(VanillaDropout)
DROPOUTS.register("gaussian", "gauss")(GaussianDropout)
DROPOUTS.register("uout", "uniform")(Uout)


def make_dropout(kind: str, rate: float, key: str = "model.dropout_kind") -> nn.Module:
    """A dropout module of ``kind`` at drop rate ``rate``; an empty slot when rate is 0."""
    cls = DROPOUTS.get(kind, key)
    return nn.Identity() if rate == 0.0 else cls(rate)

"""Test-time options for stochastic layers (dropout family, DropConnect, DropPath).

- ``deterministic``: one forward pass in eval mode, i.e. the weight-scaling inference
  rule of Srivastava et al. 2014 (JMLR 15(56), section 10): inverted dropout is the
  identity, vanilla dropout multiplies by the retain probability, DropPath by its
  survival probability.
- ``mc``: Monte-Carlo averaging over ``k`` masks (Gal & Ghahramani 2016,
  arXiv 1506.02142): the stochastic layers stay in training mode, everything else
  (BatchNorm above all) in eval mode, and the predicted class probabilities of the
  ``k`` passes are averaged. The mean of an ensemble of k members has error
  ``V / k + (k - 1) / k * C`` (variance V, covariance C of the members).

Selected by ``model.test_mode`` and ``model.mc_samples``; used by the val and test steps.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from regbench.errors import choice, positive_int
from regbench.streams import clock_of

TEST_MODES = ("deterministic", "mc")


@dataclass(frozen=True)
class Inference:
    mode: str = "deterministic"
    samples: int = 1


def inference_from(model_cfg: DictConfig) -> Inference:
    """Validated test-time option from ``cfg.model`` (defaults: conf/shared/model.yaml)."""
    mode = model_cfg.test_mode
    choice("model.test_mode", mode, TEST_MODES)
    samples = model_cfg.mc_samples
    positive_int("model.mc_samples", samples)
    return Inference(mode, int(samples) if mode == "mc" else 1)


def is_stochastic(m: nn.Module) -> bool:
    """Layers whose training-mode output is random: ours set ``stochastic = True``."""
    return bool(getattr(m, "stochastic", False)) or isinstance(m, nn.modules.dropout._DropoutNd)


@contextmanager
def stochastic_layers_on(model: nn.Module) -> Iterator[None]:
    """Inside: stochastic layers in training mode; BN and the rest keep their mode."""
    switched = [m for m in model.modules() if is_stochastic(m) and not m.training]
    for m in switched:
        m.train()
    try:
        yield
    finally:
        for m in switched:
            m.eval()


def mc_log_probs(
    model: nn.Module, x: Tensor, samples: int, counter: tuple[int, ...] = ()
) -> Tensor:
    """log of the mean softmax over ``samples`` stochastic passes: (B, K). Pass k draws
    its masks at the run clock's ``(*counter, k)`` (``counter``: the module's
    ``(MC, split, epoch, batch)``; docs/ARCHITECTURE.md, "Randomness")."""
    clock = clock_of(model)

    def one_pass(k: int) -> Tensor:
        if clock is None:
            return torch.log_softmax(model(x), dim=1)
        with clock.at(*counter, k):
            return torch.log_softmax(model(x), dim=1)

    with stochastic_layers_on(model):
        # logsumexp over passes of log_softmax = log of summed probabilities, stably.
        logp = torch.stack([one_pass(k) for k in range(samples)])
        return torch.logsumexp(logp, dim=0) - math.log(samples)  # (S, B, K) -> (B, K)

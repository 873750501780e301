"""Averaged predictions: explicit ensembles of trained models and the implicit ensemble
of one dropout model.

- :func:`ensemble_probs`: the mean of the members' predicted class probabilities (deep
  ensembles, Lakshminarayanan, Pritzel & Blundell 2017, arXiv 1612.01474), each member
  in eval mode;
- :func:`mc_dropout_probs`: the mean over ``k`` passes of one model, each pass with
  fresh masks on its inverted-dropout layers and everything else in eval mode
  (Monte-Carlo dropout, Gal & Ghahramani 2016, arXiv 1506.02142). The masks come from the
  generator handed in, not from torch's global one, so a report rebuilt from the same
  saved model draws the same masks.

Both return (N, C) probabilities for inputs (N, *shape); :func:`nll_error` scores them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from regbench.reg.dropout import BernoulliDropout, _Dropout


@torch.no_grad()
def ensemble_probs(models: Sequence[nn.Module], x: Tensor) -> Tensor:
    """Mean softmax of ``models`` (eval mode) on ``x``: (N, C)."""
    if not models:
        raise ValueError("an ensemble needs at least one member")
    total = None
    for m in models:
        was_training = m.training
        m.eval()
        p = torch.softmax(m(x).double(), dim=1)
        m.train(was_training)
        total = p if total is None else total + p
    return total / len(models)


def _inverted_mask(gen: torch.Generator):
    """A forward hook replacing an eval-mode inverted dropout layer's output (its input,
    unchanged) by ``x * mask / keep``, the mask drawn from ``gen``."""

    def hook(m: BernoulliDropout, inp: tuple[Tensor, ...], _out: Tensor) -> Tensor:
        x, keep = inp[0], 1.0 - m.rate
        mask = torch.bernoulli(torch.full(x.shape, keep, dtype=torch.float64), generator=gen)
        return x * (mask / keep).to(x.device, x.dtype)

    return hook


@torch.no_grad()
def mc_dropout_probs(model: nn.Module, x: Tensor, k: int, gen: torch.Generator) -> Tensor:
    """Mean softmax over ``k`` passes with fresh inverted-dropout masks: (N, C). Only
    inverted (Bernoulli) dropout is supported: other kinds are scaled differently at test
    time, so averaging their masks would need their own rule."""
    drops = [m for m in model.modules() if isinstance(m, _Dropout) and m.rate > 0]
    other = sorted({type(m).__name__ for m in drops if not isinstance(m, BernoulliDropout)})
    if other:
        raise ValueError(
            f"mc_dropout_probs supports inverted (bernoulli) dropout only, not {other}"
        )
    if not drops:
        raise ValueError("mc_dropout_probs: the model has no dropout layer with a rate > 0")
    was_training = model.training
    model.eval()
    hooks = [m.register_forward_hook(_inverted_mask(gen)) for m in drops]
    try:
        total = sum(torch.softmax(model(x).double(), dim=1) for _ in range(k))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return total / k


def nll_error(probs: Tensor, y: Tensor) -> tuple[float, float]:
    """Mean negative log-likelihood and error rate of probabilities (N, C) on labels (N,)."""
    nll = -torch.log(probs.gather(1, y.view(-1, 1)).clamp_min(1e-300)).mean()
    return float(nll), float((probs.argmax(1) != y).double().mean())

"""Evaluating trained dropout nets read back from the store (shared by dropout_scaling,
mc_vs_weight_scaling and dropout_ensemble).

A run trained with ``logger.save_model=true`` carries its weights (``model.pt``) and its
resolved ``config.yaml``; :func:`load_trained` rebuilds the model and the run's data
splits from those alone, so ``regbench report`` needs no training. Mask passes are drawn
from a fixed seed, so a report is the same every time it is rebuilt.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from regbench.reg.dropout import VanillaDropout, _Dropout
from regbench.reg.inference import stochastic_layers_on


def load_trained(run_id: str):
    """``(cfg, model in eval mode, splits)`` of a finished run with a ``model.pt``."""
    from regbench.data import build_data
    from regbench.nn import build_model
    from regbench.tracking import load_config, load_state_dict

    cfg = load_config(run_id)
    splits = build_data(cfg.data, cfg.seed)
    model = build_model(cfg.model, splits.input_shape, splits.num_classes)
    model.load_state_dict(load_state_dict(run_id))
    return cfg, model.eval(), splits


def dropouts(model: nn.Module) -> list[_Dropout]:
    return [m for m in model.modules() if isinstance(m, _Dropout)]


@contextmanager
def vanilla_test_factor(model: nn.Module, factor_of_p) -> Iterator[None]:
    """Inside: every vanilla dropout layer multiplies its eval-mode input by
    ``factor_of_p(p)`` (p = retain probability) instead of p, the weight-scaling rule."""
    hooks = [
        m.register_forward_hook(
            lambda mod, _, out: out * (factor_of_p(1.0 - mod.rate) / (1.0 - mod.rate))
        )
        for m in dropouts(model)
        if isinstance(m, VanillaDropout)
    ]
    try:
        yield
    finally:
        for h in hooks:
            h.remove()


@torch.no_grad()
def mask_log_probs(model: nn.Module, x: Tensor, k: int, seed: int) -> Tensor:
    """log-softmax of ``k`` passes, each with its own dropout masks: (k, N, C).
    Everything but the stochastic layers stays in eval mode."""
    torch.manual_seed(seed)
    with stochastic_layers_on(model):
        return torch.stack([torch.log_softmax(model(x), dim=1) for _ in range(k)])


@torch.no_grad()
def nll_acc(logits: Tensor, y: Tensor) -> tuple[float, float]:
    """Mean negative log-likelihood and accuracy of ``logits`` (or log-probabilities)."""
    nll = torch.nn.functional.cross_entropy(logits, y).item()
    return nll, (logits.argmax(1) == y).double().mean().item()

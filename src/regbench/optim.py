"""Optimizers and schedules by name, with parameter groups for weight-decay exclusion.

``weight_decay`` here is the optimizer's own: coupled L2 for ``sgd`` and ``adam``
(added to the gradient), decoupled for ``adamw`` (Loshchilov & Hutter 2019,
arXiv 1711.05101). With ``no_decay_bias_norm: true`` biases and every 1-D parameter
(norm weights and biases) are put in a group without decay.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch import nn

from regbench.errors import in_range
from regbench.registry import Registry

OPTIMIZERS = Registry("optimizer")
OPTIMIZERS.register("sgd")(torch.optim.SGD)
OPTIMIZERS.register("adam")(torch.optim.Adam)
OPTIMIZERS.register("adamw")(torch.optim.AdamW)

SCHEDULERS = Registry("scheduler")


def param_groups(model: nn.Module, weight_decay: float, exclude_bias_norm: bool) -> list[dict]:
    if not exclude_bias_norm:
        return [
            {
                "params": [p for p in model.parameters() if p.requires_grad],
                "weight_decay": weight_decay,
            }
        ]
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def check_optim(cfg: DictConfig) -> None:
    OPTIMIZERS.canonical(cfg.name, "optim.name")
    in_range("optim.lr", cfg.lr, 0.0, None, lo_open=True)
    in_range("optim.weight_decay", cfg.weight_decay, 0.0)
    in_range("optim.momentum", cfg.get("momentum", 0.0), 0.0, 1.0, hi_open=True)


def build_optimizer(cfg: DictConfig, model: nn.Module) -> torch.optim.Optimizer:
    check_optim(cfg)
    name = OPTIMIZERS.canonical(cfg.name, "optim.name")
    groups = param_groups(model, float(cfg.weight_decay), bool(cfg.no_decay_bias_norm))
    kwargs: dict = {"lr": float(cfg.lr)}
    if name == "sgd":
        kwargs.update(momentum=float(cfg.momentum), nesterov=bool(cfg.nesterov))
    else:
        kwargs.update(betas=tuple(cfg.betas), eps=float(cfg.eps))
    return OPTIMIZERS.get(name)(groups, **kwargs)


@SCHEDULERS.register("constant", "none")
def _constant(cfg: DictConfig, optimizer, max_epochs: int):
    return None


@SCHEDULERS.register("cosine")
def _cosine(cfg: DictConfig, optimizer, max_epochs: int):
    return torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max_epochs, eta_min=cfg.eta_min
    )


@SCHEDULERS.register("step")
def _step(cfg: DictConfig, optimizer, max_epochs: int):
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)


def build_scheduler(cfg: DictConfig, optimizer, max_epochs: int):
    return SCHEDULERS.get(cfg.name, "scheduler.name")(cfg, optimizer, max_epochs)

"""Per-model optimizers, schedules, penalties and constraints on stacked parameters.

Every hyperparameter that may differ between the models of a group is a tensor with one
entry per model, broadcast over that model's slice of each stacked parameter. The update
rules are PyTorch's (``torch.optim.SGD``, ``Adam``, ``AdamW``, single-tensor form) written
for a leading model axis, so a model trains as it would alone:

- SGD: ``g = grad + wd * p``; ``buf = momentum * buf + g`` (the first step's ``buf = g``
  is the same thing from ``buf = 0``); Nesterov ``g + momentum * buf``; ``p -= lr * g``.
- Adam (Kingma & Ba 2015, arXiv 1412.6980): coupled ``wd * p`` in the gradient;
  AdamW (Loshchilov & Hutter 2019, arXiv 1711.05101): ``p *= 1 - lr * wd`` first.

Learning rates follow each model's own scheduler, stepped on a stand-in optimizer once
per epoch, so every schedule of :mod:`regbench.optim` gives the same rates as alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from omegaconf import DictConfig
from torch import Tensor

from regbench.optim import OPTIMIZERS, build_scheduler


def per_model(values: Sequence[float], device) -> Tensor:
    return torch.tensor([float(v) for v in values], device=device)


def _b(v: Tensor, p: Tensor) -> Tensor:
    """(S,) -> (S, 1, ..., 1) broadcast over a stacked parameter."""
    return v.view(-1, *([1] * (p.dim() - 1)))


class Schedules:
    """One stand-in optimizer + scheduler per model: the lr of every epoch, exactly."""

    def __init__(self, cfgs: Sequence[DictConfig], max_epochs: int) -> None:
        self.opts, self.scheds = [], []
        for cfg in cfgs:
            opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=float(cfg.optim.lr))
            self.opts.append(opt)
            self.scheds.append(build_scheduler(cfg.scheduler, opt, max_epochs))

    def lrs(self) -> list[float]:
        return [o.param_groups[0]["lr"] for o in self.opts]

    def step(self) -> None:
        for o in self.opts:
            o.step()  # no gradients: a no-op that tells the scheduler the order is right
        for s in self.scheds:
            if s is not None:
                s.step()

    def select(self, keep: Sequence[int]) -> None:
        self.opts = [self.opts[i] for i in keep]
        self.scheds = [self.scheds[i] for i in keep]


def optim_key(cfg: DictConfig) -> tuple:
    """What must be equal for one batched optimizer (the rest is per model)."""
    o = cfg.optim
    name = OPTIMIZERS.canonical(o.name, "optim.name")
    if name == "sgd":
        return (name, bool(o.get("nesterov", False)), bool(o.get("no_decay_bias_norm", False)))
    betas = tuple(float(b) for b in o.get("betas", (0.9, 0.999)))
    return (name, betas, float(o.get("eps", 1e-8)), bool(o.get("no_decay_bias_norm", False)))


class StackedOptimizer:
    def __init__(self, params: list[Tensor], decay_free: list[bool], cfgs: Sequence[DictConfig]):
        self.key = optim_key(cfgs[0])
        self.name, dev = self.key[0], params[0].device
        self.params = params
        wd = per_model([c.optim.get("weight_decay", 0.0) for c in cfgs], dev)
        no_decay = self.key[-1]
        self.wd = [torch.zeros_like(wd) if (no_decay and free) else wd for free in decay_free]
        self.momentum = per_model([c.optim.get("momentum", 0.0) for c in cfgs], dev)
        self.lr = per_model([c.optim.lr for c in cfgs], dev)
        self.state = [torch.zeros_like(p) for p in params]  # momentum buffer / exp_avg
        self.state2 = [torch.zeros_like(p) for p in params] if self.name != "sgd" else []
        self.t = 0

    def set_lr(self, lrs: Sequence[float]) -> None:
        self.lr = per_model(lrs, self.lr.device)

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        for k, p in enumerate(self.params):
            g, wd, lr = p.grad, _b(self.wd[k], p), _b(self.lr, p)
            if self.name == "sgd":
                self._sgd(k, p, g, wd, lr)
            else:
                self._adam(k, p, g, wd, lr)

    def _sgd(self, k: int, p: Tensor, g: Tensor, wd: Tensor, lr: Tensor) -> None:
        g = g + wd * p
        mom = _b(self.momentum, p)
        buf = self.state[k].mul_(mom).add_(g)
        g = g + mom * buf if self.key[1] else buf
        p.sub_(lr * g)

    def _adam(self, k: int, p: Tensor, g: Tensor, wd: Tensor, lr: Tensor) -> None:
        b1, b2 = self.key[1]
        eps = self.key[2]
        if self.name == "adamw":
            p.mul_(1 - lr * wd)
        else:
            g = g + wd * p
        m, v = self.state[k], self.state2[k]
        m.lerp_(g, 1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        bc1, bc2 = 1 - b1**self.t, 1 - b2**self.t
        denom = (v.sqrt() / math.sqrt(bc2)).add_(eps)
        p.sub_((m / denom) * (lr / bc1))

    def select(self, keep: Sequence[int], params: list[Tensor]) -> None:
        idx = torch.tensor(list(keep), device=self.lr.device)
        self.params = params
        self.wd = [w[idx] for w in self.wd]
        self.momentum, self.lr = self.momentum[idx], self.lr[idx]
        self.state = [s[idx] for s in self.state]
        self.state2 = [s[idx] for s in self.state2]


@torch.no_grad()
def mask_grads(params: list[Tensor], masks: list[Tensor | None]) -> None:
    """Padded entries get no gradient, so they stay exactly zero (see program.py)."""
    for p, m in zip(params, masks, strict=True):
        if m is not None and p.grad is not None:
            p.grad.mul_(m)


@torch.no_grad()
def clip_grad_norms(params: list[Tensor], max_norm: Tensor) -> None:
    """``clip_grad_norm_`` per model: every model's whole gradient scaled to norm <= its
    ``max_norm`` (S,), with PyTorch's ``max / (norm + 1e-6)`` clamped at 1."""
    sq = sum(p.grad.flatten(1).square().sum(1) for p in params)  # (S,)
    coef = (max_norm / (sq.sqrt() + 1e-6)).clamp_max(1.0)
    for p in params:
        p.grad.mul_(_b(coef, p))


def penalty_values(
    params: list[Tensor], decay_free: list[bool], kind: str, which: str, ratio: Tensor
) -> Tensor:
    """Per-model penalty sums (S,) over the covered parameters (:mod:`regbench.reg.penalties`:
    ``weights`` = ndim > 1 per model, or ``all``)."""
    covered = [p for p, free in zip(params, decay_free, strict=True) if which == "all" or not free]
    l1 = sum(p.abs().flatten(1).sum(1) for p in covered)
    l2 = sum(p.square().flatten(1).sum(1) for p in covered)
    if kind == "l1":
        return l1
    if kind == "l2":
        return l2
    return ratio * l1 + (1 - ratio) * l2  # elastic net


@torch.no_grad()
def constrain(params: list[Tensor], decay_free: list[bool], kind: str, c: Tensor) -> None:
    """max_norm (per unit: a row of each weight) or frobenius_bound, per model bound c."""
    for p, free in zip(params, decay_free, strict=True):
        if free:
            continue
        if kind == "max_norm":
            norms = p.flatten(2).norm(dim=2)  # (S, out)
            scale = (_b(c, norms) / norms.clamp_min(1e-12)).clamp_max(1.0)
            p.mul_(scale.view(*scale.shape, *([1] * (p.dim() - 2))))
        else:
            norm = p.flatten(1).norm(dim=1)  # (S,)
            p.mul_(_b((c / norm.clamp_min(1e-12)).clamp_max(1.0), p))

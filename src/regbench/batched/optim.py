"""Per-model optimizers, schedules and gradient clipping on stacked parameters.

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
tests/test_batched_optim.py checks every option the configs expose step by step against
``torch.optim`` (penalties and constraints are their own files' stacked forms, reg/).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from omegaconf import DictConfig
from torch import Tensor

from regbench.optim import OPTIMIZERS, build_scheduler


def per_model(values: Sequence[float], like: Tensor) -> Tensor:
    """(S,) per-model values in ``like``'s device and dtype (float64 lr for a float64 run,
    as torch.optim's Python-float lr is there)."""
    return torch.tensor([float(v) for v in values], device=like.device, dtype=like.dtype)


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
    """The update of every model's parameters at once, on the flat (S, P) tensor.

    ``step(touched)``: ``touched`` (S, P) bool says which entries took part in this step
    (None: all). Alone, a parameter outside the loss graph (a block dropped by per-batch
    stochastic depth) has ``grad`` None and ``torch.optim`` leaves it out: its momentum,
    Adam moments and step count stay, no weight decay, no update. Untouched entries do
    the same here, and Adam's bias corrections then use per-entry step counts.
    """

    def __init__(self, flat: Tensor, decay_free: Tensor, cfgs: Sequence[DictConfig]):
        self.key = optim_key(cfgs[0])
        self.name, dev = self.key[0], flat
        self.flat = flat
        wd = per_model([c.optim.get("weight_decay", 0.0) for c in cfgs], dev).unsqueeze(1)
        # (S, P) when biases and norm parameters are exempt, else (S, 1)
        self.wd = wd * (~decay_free).float() if self.key[-1] else wd
        self.decay = bool((wd != 0).any())  # PyTorch skips the decay term when it is 0
        self.momentum = per_model([c.optim.get("momentum", 0.0) for c in cfgs], dev).unsqueeze(1)
        self.lr = per_model([c.optim.lr for c in cfgs], dev).unsqueeze(1)
        self.neg_lr = -self.lr
        self.state = torch.zeros_like(flat)  # momentum buffer / exp_avg
        self.state2 = torch.zeros_like(flat) if self.name != "sgd" else None  # exp_avg_sq
        self.t = 0
        self.steps: Tensor | None = None  # (S, P) Adam step counts once some entry skipped

    def set_lr(self, lrs: Sequence[float]) -> None:
        self.lr = per_model(lrs, self.lr).unsqueeze(1)
        self.neg_lr = -self.lr

    @torch.no_grad()
    def step(self, touched: Tensor | None = None) -> None:
        self.t += 1
        p, g = self.flat, self.flat.grad
        if self.name == "sgd":
            self._sgd(p, g, touched)
        else:
            self._adam(p, g, touched)

    def _sgd(self, p: Tensor, g: Tensor, touched: Tensor | None) -> None:
        g = g + self.wd * p if self.decay else g
        if touched is None:  # torch.optim's two ops, as alone: one addcmul rounds
            # otherwise, which moved model_double_descent's 10-seed means by up to 0.4
            # points of test error and 1.2 of train error near interpolation, for ~1%
            buf = self.state.mul_(self.momentum).add_(g)
        else:  # an untouched entry's buffer stays as it was
            buf = torch.where(touched, self.state * self.momentum + g, self.state)
            self.state.copy_(buf)
        upd = g + self.momentum * buf if self.key[1] else buf
        if touched is not None:
            upd = upd * touched
        p.addcmul_(upd, self.neg_lr)  # p - lr * update in one pass, lr per model (S, 1)

    def _adam(self, p: Tensor, g: Tensor, touched: Tensor | None) -> None:
        b1, b2 = self.key[1]
        if self.name == "adamw":
            shrink = 1 - self.lr * self.wd
            p.mul_(shrink if touched is None else torch.where(touched, shrink, 1.0))
        elif self.decay:
            g = g + self.wd * p
        m, v = self.state, self.state2
        if touched is None and self.steps is None:
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            bc1, bc2 = 1 - b1**self.t, 1 - b2**self.t
            denom = (v.sqrt() / math.sqrt(bc2)).add_(self.key[2])
            p.sub_((m / denom) * (self.lr / bc1))
            return
        if self.steps is None:  # from now on each entry counts its own steps
            self.steps = torch.full_like(p, float(self.t - 1))
        on = torch.ones_like(p, dtype=torch.bool) if touched is None else touched
        self.steps.add_(on.to(p.dtype))
        m.copy_(torch.where(on, torch.lerp(m, g, 1 - b1), m))
        v.copy_(torch.where(on, v * b2 + (1 - b2) * g * g, v))
        bc1, bc2 = 1 - b1**self.steps, 1 - b2**self.steps
        denom = (v.sqrt() / bc2.sqrt()).add_(self.key[2])
        p.sub_(torch.where(on, (m / denom) * (self.lr / bc1), 0.0))

    def select(self, keep: Sequence[int], flat: Tensor) -> None:
        idx = torch.tensor(list(keep), device=self.lr.device)
        self.flat = flat
        self.wd, self.momentum, self.lr = self.wd[idx], self.momentum[idx], self.lr[idx]
        self.neg_lr = -self.lr
        self.state = self.state[idx]
        self.state2 = None if self.state2 is None else self.state2[idx]
        self.steps = None if self.steps is None else self.steps[idx]


@torch.no_grad()
def clip_grad_norms(flat: Tensor, max_norm: float) -> None:
    """``clip_grad_norm_`` per model: every model's whole gradient (a row of the flat
    gradient) scaled to norm <= ``max_norm``, PyTorch's ``max / (norm + 1e-6)`` capped at 1."""
    coef = (max_norm / (flat.grad.norm(dim=1, keepdim=True) + 1e-6)).clamp_max(1.0)
    flat.grad.mul_(coef)

"""Batch transforms of a batched group, one draw per model.

- mixup (Zhang, Cisse, Dauphin, Lopez-Paz 2018, arXiv 1710.09412), as
  :class:`regbench.reg.labels.Mixup`: per model one ``lam ~ Beta(alpha, alpha)`` per
  mini-batch and one random pairing of its batch; soft targets
  ``lam * onehot(y) + (1 - lam) * onehot(y[perm])``.
- the cross-entropy on such probability targets, and label smoothing's loss term
  ``eps * (U - CE(t))`` (Szegedy et al. 2016, arXiv 1512.00567; as reg/labels.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def mixup(x: Tensor, y: Tensor, alpha: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """x (S, B, F), y (S, B), alpha (S,) -> mixed x and soft targets (S, B, K)."""
    S, B = y.shape
    lam = torch.distributions.Beta(alpha, alpha).sample().to(x.dtype)  # (S,)
    perm = torch.rand(S, B, device=x.device).argsort(1)  # a random pairing per model
    x_perm = x.gather(1, perm.view(S, B, *([1] * (x.dim() - 2))).expand_as(x))
    lam_x = lam.view(S, *([1] * (x.dim() - 1)))
    target = F.one_hot(y, num_classes).to(x.dtype)  # (S, B, K)
    t_perm = target.gather(1, perm.unsqueeze(-1).expand_as(target))
    lam_t = lam.view(S, 1, 1)
    return lam_x * x + (1 - lam_x) * x_perm, lam_t * target + (1 - lam_t) * t_perm


def log_probs(logits: Tensor) -> Tensor:
    """Log-softmax of logits (S, B, K) as (S, K, B): classes on dim 1, where PyTorch's CPU
    kernel vectorises along the batch (over a last dim of 10 classes it is ~4x slower)."""
    return logits.transpose(1, 2).log_softmax(1)


def soft_losses(logits: Tensor, target: Tensor) -> Tensor:
    """Per-model mean cross-entropy (S,) against probability targets (S, B, K)."""
    return -(target.transpose(1, 2) * log_probs(logits)).sum(1).mean(1)


def smoothing_gap(logits: Tensor, target: Tensor) -> Tensor:
    """Per-model mean of ``U - CE(t)`` (S,), U the cross-entropy against the uniform
    distribution: label smoothing's loss term over eps (:mod:`regbench.reg.labels`)."""
    logp = log_probs(logits)  # (S, K, B)
    if target.dim() == 2:
        data = -logp.gather(1, target.unsqueeze(1)).squeeze(1)
    else:
        data = -(target.transpose(1, 2) * logp).sum(1)
    return (-logp.mean(1) - data).mean(1)

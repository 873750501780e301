"""Target-side regularizers: label smoothing and mixup.

- label_smoothing: Szegedy et al. 2016 (arXiv 1512.00567), the target becomes
  ``(1 - eps) * t + eps / K`` (t one-hot, or mixup's soft target). Cross-entropy is
  linear in the target, so the smoothed loss is ``CE(t) + eps * (U - CE(t))`` with
  ``U = -mean_k log p_k`` the cross-entropy against the uniform distribution: an
  ordinary loss term ``eps * (U - CE(t))`` added to the data loss ``CE(t)``, logged as
  ``train/reg/<name>``; the total equals ``F.cross_entropy(label_smoothing=eps)``.
- mixup: Zhang, Cisse, Dauphin, Lopez-Paz 2018 (arXiv 1710.09412). With
  ``lam ~ Beta(alpha, alpha)`` (one per batch) and a random pairing ``perm`` of the batch,
  ``x' = lam * x + (1 - lam) * x[perm]`` and the soft target
  ``t' = lam * onehot(y) + (1 - lam) * onehot(y[perm])``, trained with cross-entropy
  on probabilities. Accuracy in ``train/acc`` is still measured against ``y``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn

from regbench.errors import ConfigError, in_range
from regbench.reg import REGULARIZERS


class Mixup:
    """Batch transform ``(x, target) -> (x_mixed, soft_target)``; ``target`` is (B,)
    class indices or (B, K) probabilities, ``num_classes`` = K."""

    def __init__(self, alpha: float, num_classes: int) -> None:
        self.alpha = float(alpha)
        self.num_classes = int(num_classes)

    def __call__(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        if target.dim() == 1:
            target = F.one_hot(target, self.num_classes).to(x.dtype)  # (B, K)
        # lam drawn on x's device from the global generator: seeded, no host sync.
        a = torch.tensor(self.alpha, device=x.device)
        lam = torch.distributions.Beta(a, a).sample()
        perm = torch.randperm(x.shape[0], device=x.device)
        lam_x = lam.to(x.dtype).view(-1, *([1] * (x.dim() - 1)))  # broadcast over (B, ...)
        x = lam_x * x + (1 - lam_x) * x[perm]
        target = lam * target + (1 - lam) * target[perm]
        return x, target

    def __repr__(self) -> str:
        return f"Mixup(alpha={self.alpha:g})"


class SmoothingTerm:
    """``eps * (U - CE(t))``: label smoothing as a loss term (see the module docstring)."""

    def __init__(self, eps: float) -> None:
        self.eps = eps

    def __call__(self, model: nn.Module, logits: Tensor, targets: Tensor, step: int) -> Tensor:
        logp = torch.log_softmax(logits, dim=1)  # (B, K)
        uniform = -logp.mean(1)  # (B,)
        if targets.dim() == 1:
            data = -logp.gather(1, targets[:, None]).squeeze(1)
        else:
            data = -(targets * logp).sum(1)
        return self.eps * (uniform - data).mean()

    def __repr__(self) -> str:
        return f"SmoothingTerm(eps={self.eps:g})"


@REGULARIZERS.register("mixup")
def add_mixup(entry: DictConfig, bundle, key: str) -> None:
    alpha = entry.alpha
    in_range(f"{key}.alpha", alpha, 0.0, None, lo_open=True)
    if bundle.num_classes is None:
        raise ConfigError(f"{key}: mixup needs the number of classes of the data set")
    bundle.transforms.append(Mixup(float(alpha), bundle.num_classes))


@REGULARIZERS.register("label_smoothing", "smoothing")
def add_label_smoothing(entry: DictConfig, bundle, key: str) -> None:
    eps = entry.smoothing
    in_range(f"{key}.smoothing", eps, 0.0, 1.0, hi_open=True)
    bundle.penalties[key.split(".", 1)[1]] = SmoothingTerm(float(eps))

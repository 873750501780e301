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
  on probabilities. Accuracy in ``train/acc`` is still measured against ``y``. The pairing
  is drawn from the transform's stream on the batch's device, ``lam`` on the host
  (``random.Random.betavariate``: the same value on every device, no device sync).

Each has its stacked form beside it (a batched group, S models on a leading axis):
mixup draws each model's ``lam`` and pairing from that model's stream with the single
form's calls, then mixes all models at once; label smoothing is the same formula with the
model axis in front.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor, nn

from regbench.errors import ConfigError, in_range
from regbench.reg import REGULARIZERS
from regbench.reg.stacked import PerModel, lead_view, per_model_tensor
from regbench.streams import Drawn


def mix(a: Tensor, b: Tensor, lam: float | Tensor, rest: float | Tensor) -> Tensor:
    """``lam * a + rest * b`` with ``rest = 1 - lam`` computed by the caller from the same
    double, so a model's mix is bitwise the same alone and stacked."""
    return lam * a + rest * b


class Mixup(Drawn):
    """Batch transform ``(x, target) -> (x_mixed, soft_target)``; ``target`` is (B,)
    class indices or (B, K) probabilities, ``num_classes`` = K."""

    per_model = ("alpha",)

    def __init__(self, alpha: float, num_classes: int) -> None:
        self.alpha = float(alpha)
        self.num_classes = int(num_classes)

    def draws(self, x: Tensor) -> tuple[float, Tensor]:
        """``lam ~ Beta(alpha, alpha)`` and a random pairing ``perm`` (B,) of the batch."""
        perm = torch.randperm(x.shape[0], device=x.device, generator=self.generator(x.device))
        return self.host().betavariate(self.alpha, self.alpha), perm

    def __call__(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        lam, perm = self.draws(x)
        if not target.is_floating_point():
            target = F.one_hot(target, self.num_classes).to(x.dtype)  # (B, K)
        return mix(x, x[perm], lam, 1 - lam), mix(target, target[perm], lam, 1 - lam)

    @classmethod
    def stacked(cls, members: Sequence[Mixup]) -> StackedMixup:
        return StackedMixup(members)

    def __repr__(self) -> str:
        return f"Mixup(alpha={self.alpha:g})"


class StackedMixup:
    """S models' mixup of x (S, B, ...) and targets (S, B) or (S, B, K): each model's
    ``lam`` and pairing from its own stream, then one mix of all models."""

    def __init__(self, members: Sequence[Mixup]) -> None:
        self.members = list(members)

    def __call__(self, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        S, B = x.shape[:2]
        draws = [m.draws(xs) for m, xs in zip(self.members, x, strict=True)]
        lam = per_model_tensor([d[0] for d in draws], x)
        rest = per_model_tensor([1 - d[0] for d in draws], x)
        # each model's pairing as rows of the flattened (S * B) batch
        rows = torch.stack([d[1] for d in draws]) + torch.arange(S, device=x.device)[:, None] * B
        rows = rows.view(-1)
        if not target.is_floating_point():
            target = F.one_hot(target, self.members[0].num_classes).to(x.dtype)  # (S, B, K)

        def paired(t: Tensor) -> Tensor:
            return t.reshape(S * B, *t.shape[2:]).index_select(0, rows).view_as(t)

        x_mix = mix(x, paired(x), lead_view(lam, x.dim()), lead_view(rest, x.dim()))
        t_mix = mix(target, paired(target), lam.view(S, 1, 1), rest.view(S, 1, 1))
        return x_mix, t_mix


def smoothing_gap(logits: Tensor, targets: Tensor, class_dim: int) -> Tensor:
    """Per sample ``U - CE(t)``, U the cross-entropy against the uniform distribution:
    logits with classes on ``class_dim``; targets class indices (the logits' shape
    without ``class_dim``) or probabilities (the logits' shape)."""
    logp = torch.log_softmax(logits, dim=class_dim)
    uniform = -logp.mean(class_dim)
    if targets.dim() < logits.dim():
        data = -logp.gather(class_dim, targets.unsqueeze(class_dim)).squeeze(class_dim)
    else:
        data = -(targets * logp).sum(class_dim)
    return uniform - data


class SmoothingTerm:
    """``eps * (U - CE(t))``: label smoothing as a loss term (see the module docstring)."""

    per_model = ("smoothing",)

    def __init__(self, eps: float) -> None:
        self.eps = eps

    def __call__(self, model: nn.Module, logits: Tensor, targets: Tensor, step: int) -> Tensor:
        return self.eps * smoothing_gap(logits, targets, 1).mean(-1)  # logits (B, K)

    @classmethod
    def stacked(cls, members: Sequence[SmoothingTerm]) -> StackedSmoothing:
        return StackedSmoothing(members)

    def __repr__(self) -> str:
        return f"SmoothingTerm(eps={self.eps:g})"


class StackedSmoothing:
    """Per-model ``eps * (U - CE(t))`` (S,) of logits (S, B, K)."""

    def __init__(self, members: Sequence[SmoothingTerm]) -> None:
        self.eps = PerModel([m.eps for m in members])

    def __call__(self, stacked, logits: Tensor, targets: Tensor, step: int) -> Tensor:
        # classes on dim 1, (S, K, B): PyTorch's CPU log-softmax over a last dim of 10
        # classes runs ~4x slower than over a strided one, vectorised along the batch
        if targets.dim() == 3:
            targets = targets.transpose(1, 2)
        gap = smoothing_gap(logits.transpose(1, 2), targets, 1)  # (S, B)
        return self.eps.on(logits) * gap.mean(-1)


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

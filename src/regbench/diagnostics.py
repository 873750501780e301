"""Diagnostics of a trained model, logged under ``diag/`` (docs/ARCHITECTURE.md, "Parts").

Variance shift (Li, Chen, Hu, Yang, CVPR 2019, arXiv 1801.05134): dropout in training
changes the variance of the features a BatchNorm layer sees, so its moving variance
(accumulated with dropout on) no longer matches the variance at inference (dropout
off). Per BN layer we log, averaged over channels,

    shift = max(real_var / moving_var, moving_var / real_var)     (1.0 = no shift)

with real_var the variance of the layer's input over the training data in eval mode
(measured by a forward pre-hook; ``eps`` of the layer is added to both, the variance
the layer actually divides by). With inverted dropout of retain probability p (drop
rate 1 - p) on zero-mean features directly before BN, the shift is about 1 / p.

BN re-estimation (their fix): recompute the running statistics on a copy of the model
over the training data with dropout off and weights frozen, as a cumulative average
(``momentum=None``) of the batch statistics. The model the run tests stays the plain one.

``diag/var_shift_max`` is the largest over the layers (the shift compounds with depth).
``diag/bn_input_q/<bn>`` is the channel mean of q = c^2 / v, c and v the mean and variance
of the layer's input (eval mode): Li et al.'s formula predicts the shift from it, since
for multiplicative noise g (E g = 1) the ratio per channel is 1 + (1 + q)(E g^2 - 1),
linear in q, so its channel mean needs only the channel mean of q.

Also: train-set accuracy in train mode (dropout on, BN batch statistics) vs eval mode;
test accuracy before/after re-estimation; per-layer weight norms; the fraction of
weights with ``|w| < threshold`` (``diag/sparsity``); the generalization gap
``train_acc_evalmode - test_acc``. Test accuracy here is deterministic inference.
For residual MLPs: test accuracy with each residual block deleted in turn
(``diag/delete_acc/<l>``, Veit et al. 2016, arXiv 1605.06431). The test-time probes a run
asks for (unit ablation, pruning, activation statistics: :mod:`regbench.probes`) come in
as one callable, built by the caller from the ``diag`` section, and add their metrics.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from regbench.errors import in_range, positive_int
from regbench.streams import DIAG, clock_of

Prep = Callable[[Tensor], Tensor]
#: test-time probes of a trained model: (model, test batches) -> {"diag/...": value}
Probes = Callable[[nn.Module, "EvalData"], dict[str, float]]


class EvalData:
    """Re-iterable (x, y) batches in a fixed order, moved to ``device`` and prepared by
    ``prep`` (e.g. uint8 images -> normalised floats) one batch at a time."""

    def __init__(self, x: Tensor, y: Tensor, batch_size: int, device, prep: Prep | None = None):
        self.x, self.y, self.batch_size = x, y, int(batch_size)
        self.device, self.prep = device, prep or (lambda t: t)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for i in range(0, len(self.y), self.batch_size):
            x = self.x[i : i + self.batch_size].to(self.device)
            yield self.prep(x), self.y[i : i + self.batch_size].to(self.device)

    def with_batch_size(self, batch_size: int) -> EvalData:
        return EvalData(self.x, self.y, batch_size, self.device, self.prep)


def batch_norms(model: nn.Module) -> dict[str, nn.modules.batchnorm._BatchNorm]:
    """BN layers in module order, named ``bn1``, ``bn2``, ..."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    return {f"bn{i}": m for i, m in enumerate(bns, start=1)}


@torch.no_grad()
def accuracy(model: nn.Module, data: EvalData, train_mode: bool = False, epoch: int = 0) -> float:
    """Accuracy of ``model`` on ``data``; ``train_mode`` runs a deep copy in training mode
    (stochastic layers on, BN on batch statistics) so the model itself is untouched. Its
    masks come from the run's streams at ``(DIAG, epoch, batch)``: they cannot shift what
    training draws (docs/ARCHITECTURE.md, "Randomness")."""
    if train_mode:
        model = copy.deepcopy(model).train()
    clock = clock_of(model) if train_mode else None
    was_training = model.training
    model.train(train_mode)
    correct, n = 0, 0
    for i, (x, y) in enumerate(data):
        if clock is None:
            logits = model(x)
        else:
            with clock.at(DIAG, epoch, i):
                logits = model(x)
        correct += int((logits.argmax(1) == y).sum())
        n += len(y)
    model.train(was_training)
    return correct / max(n, 1)


@torch.no_grad()
def eval_pass(model: nn.Module, data, handles: list) -> None:
    """Every batch of ``data`` ((x, y) pairs) through ``model`` in eval mode, for the
    forward hooks ``handles`` to record; the model's mode is restored and the hooks removed
    afterwards, also when a batch raises."""
    was_training = model.training
    model.eval()
    try:
        for x, _ in data:
            model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()


@torch.no_grad()
def input_moments(model: nn.Module, data: EvalData) -> dict[str, tuple[Tensor, Tensor]]:
    """Per-channel mean and variance, each (C,), of every BN layer's input over
    ``data``, eval mode."""
    bns = batch_norms(model)
    # running sums in float64: n, sum_c, sum_c of squares
    acc = {name: [0, 0.0, 0.0] for name in bns}

    def hook(name: str):
        def pre(_m: nn.Module, args: tuple[Tensor, ...]) -> None:
            x = args[0].double()
            dims = [d for d in range(x.dim()) if d != 1]  # all but channels: (B, C, *S)
            a = acc[name]
            a[0] += x.numel() // x.shape[1]
            a[1] = a[1] + x.sum(dims)
            a[2] = a[2] + x.square().sum(dims)

        return pre

    eval_pass(model, data, [m.register_forward_pre_hook(hook(name)) for name, m in bns.items()])
    return {
        name: (s1 / max(n, 1), (s2 - s1 * s1 / n) / max(n - 1, 1))
        for name, (n, s1, s2) in acc.items()
    }


def input_variances(model: nn.Module, data: EvalData) -> dict[str, Tensor]:
    """Per-channel variance (C,) of every BN layer's input over ``data``, eval mode."""
    return {name: var for name, (_, var) in input_moments(model, data).items()}


def input_q(model: nn.Module, data: EvalData) -> dict[str, float]:
    """Channel mean of mean^2 / variance of every BN layer's input (module docstring)."""
    return {
        name: float((mean.square() / var).mean())
        for name, (mean, var) in input_moments(model, data).items()
    }


def variance_shift(model: nn.Module, data: EvalData) -> dict[str, float]:
    """Li et al.'s shift ratio per BN layer (channel mean), see the module docstring."""
    real = input_variances(model, data)
    out = {}
    for name, bn in batch_norms(model).items():
        if bn.running_var is None:  # track_running_stats=False: no moving statistics
            continue
        r = real[name] + bn.eps
        m = bn.running_var.double() + bn.eps
        out[name] = float(torch.maximum(r / m, m / r).mean())
    return out


@torch.no_grad()
def reestimate_bn(model: nn.Module, data: EvalData) -> nn.Module:
    """A copy of ``model`` whose BN running statistics are the cumulative average over
    ``data`` with everything else in eval mode (dropout off, weights untouched)."""
    model = copy.deepcopy(model).eval()
    for bn in batch_norms(model).values():
        if bn.running_var is not None:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative moving average over the passes
            bn.train()
    for x, _ in data:
        model(x)
    return model.eval()


def weight_stats(model: nn.Module, threshold: float = 1e-3) -> dict[str, float]:
    """Frobenius norm of each weight (ndim > 1) and the fraction of |w| < threshold; per
    weight, the scale-free fraction of |w| < 0.01 RMS(w) (``small_frac/``; a Gaussian
    gives P(|z| < 0.01) = 0.8%, an L1-sparse weight far more)."""
    out, small, total = {}, 0, 0
    for name, p in model.named_parameters():
        if p.ndim > 1:
            w = p.detach()
            out[f"weight_norm/{name.removesuffix('.weight')}"] = float(w.norm())
            rms = w.square().mean().sqrt()
            frac = float((w.abs() < 0.01 * rms).double().mean())
            out[f"small_frac/{name.removesuffix('.weight')}"] = frac
            small += int((p.detach().abs() < threshold).sum())
            total += p.numel()
    out["sparsity"] = small / max(total, 1)
    return out


def block_deletion(model: nn.Module, test: EvalData) -> dict[str, float]:
    """Test accuracy with one residual block removed at a time (its branch skipped, the
    identity path kept; Veit et al. 2016, arXiv 1605.06431), for blocks that support it
    (a ``deleted`` flag: the residual MLP's blocks). ``diag/delete_acc/<l>``, l from 1."""
    blocks = [m for m in model.modules() if isinstance(getattr(m, "deleted", None), bool)]
    out = {}
    for i, block in enumerate(blocks, start=1):
        block.deleted = True
        try:
            out[f"diag/delete_acc/{i}"] = accuracy(model, test)
        finally:
            block.deleted = False
    return out


def diagnose(
    model: nn.Module,
    train: EvalData,
    test: EvalData,
    train_batch_size: int,
    threshold: float = 1e-3,
    epoch: int = 0,
    probes: Probes | None = None,
) -> dict[str, float]:
    """All ``diag/`` metrics of ``model`` (not modified) at the end of ``epoch``;
    ``train_batch_size`` is used wherever BN runs on batch statistics (train-mode
    accuracy, re-estimation); ``probes(model, test)`` adds the probes' metrics."""
    train_small = train.with_batch_size(train_batch_size)
    out = {f"diag/{k}": v for k, v in weight_stats(model, threshold).items()}
    out["diag/train_acc_trainmode"] = accuracy(model, train_small, True, epoch)
    out["diag/train_acc_evalmode"] = accuracy(model, train)
    out["diag/test_acc"] = accuracy(model, test)
    out["diag/gen_gap"] = out["diag/train_acc_evalmode"] - out["diag/test_acc"]
    out.update(block_deletion(model, test))
    if batch_norms(model):
        shifts = variance_shift(model, train)
        out.update({f"diag/var_shift/{k}": v for k, v in shifts.items()})
        if shifts:
            out["diag/var_shift_max"] = max(shifts.values())
        out.update({f"diag/bn_input_q/{k}": v for k, v in input_q(model, train).items()})
        reest = reestimate_bn(model, train_small)
        shifts = variance_shift(reest, train)
        out.update({f"diag/var_shift_reest/{k}": v for k, v in shifts.items()})
        out["diag/test_acc_reest"] = accuracy(reest, test)
    if probes is not None:
        out.update(probes(model, test))
    return out


@dataclass(frozen=True)
class DiagData:
    """What the diagnostics read, handed over explicitly by the caller: the train and
    test tensors as stored, ``prep`` to turn a batch into model inputs (e.g. uint8 images
    -> normalised floats), and the training batch size (for BN on batch statistics)."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    train_batch_size: int
    prep: Prep | None = None


class DiagnosticsCallback(pl.Callback):
    """Logs :func:`diagnose` at the end of training (after early stopping has restored
    the best weights) and, if ``every_n_epochs`` > 0, every that many epochs."""

    def __init__(
        self,
        data: DiagData,
        every_n_epochs: int = 0,
        threshold: float = 1e-3,
        eval_batch_size: int = 1000,
        probes: Probes | None = None,
    ) -> None:
        self.data = data
        self.probes = probes
        self.every_n_epochs, self.threshold = int(every_n_epochs), float(threshold)
        self.eval_batch_size = int(eval_batch_size)
        self.last: dict[str, float] = {}
        self._epoch = 0

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._epoch = trainer.current_epoch
        n = self.every_n_epochs
        if n and (self._epoch + 1) % n == 0 and self._epoch + 1 < trainer.max_epochs:
            self._log(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._log(trainer, pl_module)

    def _log(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        d, device, size = self.data, pl_module.device, self.eval_batch_size
        train = EvalData(d.x_train, d.y_train, size, device, d.prep)
        test = EvalData(d.x_test, d.y_test, size, device, d.prep)
        # The train-mode pass draws at (DIAG, epoch, batch) of the run's streams: it cannot
        # change what training or the test draws.
        self.last = diagnose(
            pl_module.model,
            train,
            test,
            d.train_batch_size,
            self.threshold,
            self._epoch,
            self.probes,
        )
        if trainer.logger is not None:
            trainer.logger.log_metrics(self.last, step=self._epoch)


def diagnostics_callback(
    cfg: DictConfig | None, data: DiagData, probes: Probes | None = None
) -> DiagnosticsCallback | None:
    """The callback from the ``diag`` config section; None when disabled or absent."""
    if cfg is None or not cfg.enabled:
        return None
    if cfg.every_n_epochs != 0:
        positive_int("diag.every_n_epochs", cfg.every_n_epochs)
    in_range("diag.sparsity_threshold", cfg.sparsity_threshold, 0.0, lo_open=True)
    positive_int("diag.eval_batch_size", cfg.eval_batch_size)
    return DiagnosticsCallback(
        data, cfg.every_n_epochs, cfg.sparsity_threshold, cfg.eval_batch_size, probes
    )

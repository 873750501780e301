"""Which runs batch together: members, the reasons a run cannot batch, and groups.

A run batches with others when everything in its config is equal except values that can
live per model: those of :data:`PER_MODEL` (seed, learning rate, weight decay, momentum,
dropout rates, label noise, the schedule, the logging cadence, and the width, padded, see
:mod:`regbench.batched.program`) and the fields each regularizer object says are its own
(``per_model``: strengths, bounds, ``alpha``...). Whether a regularizer batches at all is
its object's answer too (a ``stacked`` form, :mod:`regbench.reg.stacked`): this module
knows no regularizer by name. Width groups are cut so that
padding never costs more than a separate group would: a group's step costs about
``OVERHEAD + S * max_work`` (per-op overhead plus arithmetic, :func:`work`: multiply-adds
per sample, an MLP's parameter count), so a model joins the group of smaller models while
``S * (its work - group max) <= OVERHEAD``. Conv nets with 2-D convolutions run one by
one on a CPU (:data:`CPU_SINGLE`), and batch on a GPU.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from regbench.batched.signature import conv_dims, signature
from regbench.reg.stacked import MERGES_WITH_EMPTY
from regbench.tracking import flatten

#: config keys that may differ inside a group (prefix match for scheduler.*, logger.*)
PER_MODEL = (
    "seed",
    "data.label_noise",
    "optim.lr",
    "optim.weight_decay",
    "optim.momentum",
    "model.width",
    "model.dropout",
    "model.input_dropout",
    "model.head_dropout",
    "model.dropconnect",
    "model.init",
    "model.init_scale",
    "model.survival_last",
    "scheduler.",
    "logger.",
    "trainer.progress_bar",
)
# A step's fixed cost (~40 small ops and the autograd walk, a few tenths of a ms on one core)
# in multiply-adds per sample (an MLP's parameters) whose arithmetic (6 * batch * work
# flops) takes as long: an estimate.
OVERHEAD = 20_000
# Each model of a group adds work that does not scale with its parameters (its run's
# MLflow writes, its order and masks, its share of the loss and metric ops): ~1.3 ms per
# epoch of model_double_descent on one core, the arithmetic time of ~3,000 parameters
# (fitted to that reproduction's group timings). It does not change where widths are cut
# (a model pays it in any group), only the cost estimate that orders the groups.
MODEL_OVERHEAD = 3_000
MAX_GROUP = 64
EXEC_TAG = "regbench.exec"
#: conv nets that run one by one on a CPU (by their convolutions' spatial dims), with the
#: reason; on a GPU they batch. One training step of S models batched against S plain
#: PyTorch steps one after another (torch.optim SGD, no Lightning), one thread of the
#: 2-core AMD EPYC, measured in one process: cnn1d width 32, S = 8: 0.38-0.65; 1-D
#: ResNet-20 width 16 / 32, S = 4: 0.71-0.87; pre-activation ResNet-20: 0.81; WRN-10-2:
#: 0.68; ResNet-20 on 32x32 images, S = 4: 3.5 (oneDNN's direct 2-D convolutions beat
#: im2col's nine shifted copies at that size). So 1-D conv nets batch on CPU, 2-D do not.
CPU_SINGLE: dict[int, str] = {
    2: "2-D conv nets run one by one on CPU (batched im2col convolutions are 3.5x slower "
    "than oneDNN's there); on CUDA they batch",
}


@dataclass
class Member:
    """One run of a group: its config, name, tags and what ``train.build`` made of it."""

    cfg: DictConfig
    label: list[str]
    tags: dict
    splits: object = None
    module: nn.Module = None
    eval_batch_size: int = 1000
    diag: object = None  # the run's DiagnosticsCallback (its settings), if enabled
    net: nn.Module | None = None  # a model built without data (planning a claim)
    prep: object = None  # the data module's batch preparation (uint8 images -> floats)
    _regs: object = None

    @property
    def model(self) -> nn.Module:
        return self.net if self.module is None else self.module.model

    @property
    def regs(self):
        """The run's regularizer bundle (built from the config when planning)."""
        if self.module is not None:
            return self.module.reg
        if self._regs is None:
            from regbench.reg import build_regularizers

            heads = [m for m in self.model.modules() if isinstance(m, nn.Linear)]
            self._regs = build_regularizers(self.cfg, heads[-1].out_features)
        return self._regs


def reg_reason(m: Member) -> str | None:
    """Why a regularizer of ``m`` cannot batch (no stacked form), or None."""
    from regbench.diagnostics import DiagnosticsCallback
    from regbench.reg.stacked import stackable

    regs = m.regs
    for name, objs in regs.entries.items():
        for obj in objs:
            why = stackable(obj)
            if why:
                return f"reg.{name} runs one by one: {why}"
    listed = {id(o) for objs in regs.entries.values() for o in objs}
    extra = [
        type(c).__name__
        for c in regs.callbacks
        if id(c) not in listed and not isinstance(c, DiagnosticsCallback)
    ]
    return f"callbacks {extra} run one by one" if extra else None


def unbatchable(m: Member) -> str | None:
    """Why a member must run alone, or None. Planning members (no module yet) are
    judged on their config, model and regularizers only."""
    sig = signature(m.model)
    if isinstance(sig, str):
        return sig
    if m.cfg.model.get("test_mode", "deterministic") != "deterministic":
        return "model.test_mode=mc runs one by one"
    if str(m.cfg.trainer.precision) not in ("32-true", "32", "64-true", "64"):
        return f"trainer.precision={m.cfg.trainer.precision} runs one by one"
    why = reg_reason(m) or cpu_reason(sig, m.cfg)
    if why or m.module is None:
        return why
    return None


def device_of(cfg: DictConfig) -> torch.device:
    """Lightning's choice for ``trainer.accelerator``: a GPU when asked for or available."""
    acc = str(cfg.trainer.accelerator)
    if acc in ("gpu", "cuda") or (acc == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", 0)
    return torch.device("cpu")


def cpu_reason(sig: tuple[str, ...], cfg: DictConfig) -> str | None:
    """Why a family that batches runs one by one on this run's CPU (None on a GPU, and for
    the families that pay on CPU): see :data:`CPU_SINGLE`."""
    if device_of(cfg).type != "cpu":
        return None
    dims = conv_dims(sig)
    return CPU_SINGLE.get(dims)


def per_model(key: str) -> bool:
    """Whether a flattened config key may differ inside a group: an exact name, or under a
    prefix ending in '.' (``model.dropout_kind`` is not ``model.dropout``)."""
    return key in PER_MODEL or key.startswith(tuple(p for p in PER_MODEL if p.endswith(".")))


def group_key(m: Member) -> tuple:
    """Equal keys batch together (after width cutting)."""
    own = {  # the fields each regularizer keeps per model
        f"reg.{name}.{field}"
        for name, objs in m.regs.entries.items()
        for obj in objs
        for field in getattr(obj, "per_model", ())
    }
    flat = flatten(m.cfg)
    fixed = tuple(sorted((k, v) for k, v in flat.items() if not per_model(k) and k not in own))
    sig = signature(m.model)
    coarse = tuple("d" if t == "id" or t.startswith(MERGES_WITH_EMPTY) else t for t in sig)
    return fixed, coarse


_WORK: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def work(m: Member) -> int:
    """Multiply-adds per sample of the member's model, the cost model's unit: each linear
    weight once (an MLP's work is about its parameter count), each conv weight once per
    output position. Counted by hooks on one eval-mode pass over a zero sample (no draws,
    no running statistics moved); without a known input shape, the parameter count."""
    model = m.model
    if model in _WORK:
        return _WORK[model]
    shape = getattr(model, "input_shape", None)
    if shape is None:
        return sum(p.numel() for p in model.parameters())
    total = 0

    def count(mod: nn.Module, inputs, out: Tensor) -> None:
        nonlocal total
        positions = out[0, 0].numel() if out.dim() > 2 else 1
        total += mod.weight.numel() * positions

    layers = [x for x in model.modules() if isinstance(x, nn.Linear | nn.Conv1d | nn.Conv2d)]
    handles = [x.register_forward_hook(count) for x in layers]
    modes = {x: x.training for x in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *shape, device=next(model.parameters()).device))
    finally:
        for h in handles:
            h.remove()
        for x, mode in modes.items():
            x.training = mode
    _WORK[model] = total
    return total


def group_cost(n_models: int, max_work: int) -> int:
    """A group's estimated cost per step, in multiply-adds per sample."""
    return OVERHEAD + n_models * (MODEL_OVERHEAD + max_work)


def cut_by_width(members: list[Member], overhead: int = OVERHEAD) -> list[list[Member]]:
    """Members of one key, smallest first, cut where padding would cost more than a group."""
    groups: list[list[Member]] = []
    for m in sorted(members, key=work):
        g = groups[-1] if groups else None
        if g and len(g) < MAX_GROUP and len(g) * (work(m) - work(g[-1])) <= overhead:
            g.append(m)
        else:
            groups.append([m])
    return groups


def make_groups(members: Sequence[Member]) -> list[list[Member]]:
    """Batchable members by key, then by width; order within a key: smallest first."""
    by_key: dict[tuple, list[Member]] = {}
    for m in members:
        by_key.setdefault(group_key(m), []).append(m)
    return [g for ms in by_key.values() for g in cut_by_width(ms)]

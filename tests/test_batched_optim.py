"""One optimizer semantics: the batched group's StackedOptimizer, Schedules and gradient
clipping against torch.optim (as regbench.optim builds it for a run) and Lightning's
clipping (``clip_grad_norm_``), step by step, for every option the configs expose: SGD
with and without momentum, Nesterov, coupled weight decay, Adam, AdamW's decoupled decay,
the no-decay group of biases and norm parameters, every schedule of regbench.optim,
clipping. Three models with their own lr, weight decay and momentum; the same gradients
reach both sides; after every step each model's parameters agree within :data:`REL` of
their largest entry (the arithmetic differs only in rounding: PyTorch fuses some updates).

Adam and AdamW divide by sqrt(v): a rounding-level difference in a near-zero gradient
entry (clipping's norm summed in another order, a fused update) becomes a relative
difference of that entry's normalised step, about lr in size. Measured over 60 model
initialisations (6 steps, clipping at 0.5): worst relative gap 2.7e-5, median 3.4e-7
(SGD with momentum and decay: 2.3e-7 for all 60); so Adam's tolerance is 1e-4, SGD's
1e-6. The models are built from a fixed seed, so a test does not depend on which tests
ran before it in its worker (the 1e-6 it once had for Adam failed for some orders)."""

from __future__ import annotations

import copy

import pytest
import torch

from regbench.batched.optim import Schedules, StackedOptimizer, clip_grad_norms
from regbench.batched.program import StackedNet
from regbench.nn import build_model
from regbench.optim import build_optimizer, build_scheduler

OPTIMS = {
    "sgd": ["optim=sgd", "optim.momentum=0.0"],
    "sgd_momentum_decay": ["optim=sgd"],
    "sgd_nesterov_no_decay_group": [
        "optim=sgd",
        "optim.nesterov=true",
        "optim.no_decay_bias_norm=true",
    ],
    "adam": ["optim=adam", "optim.betas=[0.8,0.99]", "optim.eps=1e-6"],
    "adamw": ["optim=adamw"],
    "adam_no_decay_group": ["optim=adam", "optim.no_decay_bias_norm=true"],
}
# per model: (lr, weight decay, momentum); SGD's Nesterov needs momentum > 0
PER_MODEL = [(0.05, 0.0, 0.9), (0.02, 0.01, 0.5), (0.1, 0.2, 0.8)]
SCHEDULES = {
    "constant": ["scheduler=constant"],
    "cosine": ["scheduler=cosine", "scheduler.eta_min=0.001"],
    "step": ["scheduler=step", "scheduler.step_size=1", "scheduler.gamma=0.5"],
}
EPOCHS, STEPS = 3, 2


def configs(tiny, optim: list[str], schedule: list[str], clip: str | None) -> list:
    out = []
    for i, (lr, wd, mom) in enumerate(PER_MODEL):
        extra = [f"optim.lr={lr}", f"optim.weight_decay={wd}", f"seed={i}"]
        if optim[0] == "optim=sgd" and "optim.momentum=0.0" not in optim:
            extra.append(f"optim.momentum={mom}")
        clips = [f"trainer.gradient_clip_val={clip}"] if clip else []
        overrides = ["model.norm=batch", "model.width=16", *optim, *schedule, *extra, *clips]
        out.append(tiny(*overrides, f"trainer.max_epochs={EPOCHS}"))
    return out


def grads_like(models, g: torch.Generator) -> tuple[list[list[torch.Tensor]], torch.Tensor]:
    """Random gradients per model (each parameter's shape), and the same stacked as the
    program's flat (S, P) tensor."""
    per_model, holders = [], []
    for m in models:
        grads = [torch.randn(p.shape, generator=g) for p in m.parameters()]
        holder = copy.deepcopy(m)
        with torch.no_grad():
            for p, v in zip(holder.parameters(), grads, strict=True):
                p.copy_(v)
        per_model.append(grads)
        holders.append(holder)
    return per_model, StackedNet(holders, "cpu").flat.detach()


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("optim", list(OPTIMS))
def test_stacked_optimizer_steps_as_torch_optim(tiny, optim, schedule):
    check(configs(tiny, OPTIMS[optim], SCHEDULES[schedule], None))


@pytest.mark.parametrize("optim", ["sgd_momentum_decay", "adam"])
def test_gradient_clipping_per_model_as_lightning(tiny, optim):
    check(configs(tiny, OPTIMS[optim], SCHEDULES["constant"], "0.5"))


#: relative tolerance on the weights after every step, by optimizer (see the docstring)
REL = {"sgd": 1e-6, "adam": 1e-4, "adamw": 1e-4}


def check(cfgs) -> None:
    torch.manual_seed(0)
    rel = REL[str(cfgs[0].optim.name)]
    models = [build_model(c.model, (40,), 10) for c in cfgs]
    singles = copy.deepcopy(models)
    opts = [build_optimizer(c.optim, m) for c, m in zip(cfgs, singles, strict=True)]
    scheds = [build_scheduler(c.scheduler, o, EPOCHS) for c, o in zip(cfgs, opts, strict=True)]
    prog = StackedNet(models, "cpu")
    stacked = StackedOptimizer(prog.flat, prog.decay_free_flat, cfgs)
    schedules = Schedules(cfgs, EPOCHS)
    clip = cfgs[0].trainer.gradient_clip_val
    g = torch.Generator().manual_seed(0)
    for _ in range(EPOCHS):
        stacked.set_lr(schedules.lrs())
        for _ in range(STEPS):
            per_model, flat_grad = grads_like(singles, g)
            prog.flat.grad = flat_grad.clone()
            if clip:
                clip_grad_norms(prog.flat, float(clip))
            stacked.step()
            for m, opt, grads in zip(singles, opts, per_model, strict=True):
                for p, v in zip(m.parameters(), grads, strict=True):
                    p.grad = v.clone()
                if clip:  # what Lightning's clip_gradients(opt, clip, "norm") does
                    torch.nn.utils.clip_grad_norm_(m.parameters(), float(clip))
                opt.step()
            prog.unstack()
            for m, single in zip(models, singles, strict=True):
                for (name, a), b in zip(m.named_parameters(), single.parameters(), strict=True):
                    # rounding (PyTorch fuses some updates: add with alpha is an FMA)
                    err = float((a - b).abs().max() / b.abs().max())
                    assert err <= rel, (name, err)
        schedules.step()
        for s in scheds:
            if s is not None:
                s.step()
        lrs = [o.param_groups[0]["lr"] for o in opts]
        assert schedules.lrs() == pytest.approx(lrs, rel=1e-12)

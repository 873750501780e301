"""Evaluating trained dropout nets read back from the store (shared by dropout_scaling,
mc_vs_weight_scaling and dropout_ensemble).

A run trained with ``logger.save_model=true`` carries its weights (``model.pt``) and its
resolved ``config.yaml``; :func:`load_trained` rebuilds the model and the run's data
splits from those alone, so ``regbench report`` needs no training. Mask passes are drawn
from a fixed seed, so a report is the same every time it is rebuilt. Also the exact
check of dropout_scaling: vanilla dropout reparametrized (W/p, lr/p^2) against inverted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from regbench import streams
from regbench.reg.dropout import VanillaDropout, _Dropout
from regbench.reg.inference import stochastic_layers_on


def load_trained(run_id: str):
    """``(cfg, model in eval mode, splits)`` of a finished run with a ``model.pt``."""
    from regbench.data import build_data
    from regbench.nn import build_model
    from regbench.tracking.artifacts import load_config, load_state_dict

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
    Everything but the stochastic layers stays in eval mode. The layers are bound to the
    streams of run ``seed`` (docs/ARCHITECTURE.md, "Randomness"), pass i drawing at
    counter ``(i,)``: the passes of :func:`~regbench.reg.inference.mc_log_probs`."""
    clock = streams.Clock()
    streams.bind_model(model, streams.Stream.of_run(seed).child("layer"), clock)
    out = []
    with stochastic_layers_on(model):
        for i in range(k):
            with clock.at(i):
                out.append(torch.log_softmax(model(x), dim=1))
    return torch.stack(out)


@torch.no_grad()
def nll_acc(logits: Tensor, y: Tensor) -> tuple[float, float]:
    """Mean negative log-likelihood and accuracy of ``logits`` (or log-probabilities)."""
    nll = torch.nn.functional.cross_entropy(logits, y).item()
    return nll, (logits.argmax(1) == y).double().mean().item()


def following_linears(model: nn.Module) -> list[nn.Linear]:
    """The Linear layer right after each dropout layer (in execution order for MLPs)."""
    out, pending = [], False
    for m in model.modules():
        if m in dropouts(model):
            pending = True
        elif isinstance(m, nn.Linear) and pending:
            out.append(m)
            pending = False
    return out


def exact_fit(rate: float, seed: int, steps: int, extra: list[str]):
    """Train the inverted net, its vanilla image (W/p, lr/p^2) and a naive vanilla net
    (same init and step) on the same batches and masks; record the logit gaps."""
    from regbench.config import compose
    from regbench.data import build_data
    from regbench.nn import build_model

    base = ["experiment=dropout_scaling", f"model.dropout={rate}", *extra]
    cfgs = {k: compose([*base, f"model.dropout_kind={k}"]) for k in ("bernoulli", "vanilla")}
    splits = build_data(cfgs["bernoulli"].data, seed)
    lr, p, bs = (
        float(cfgs["bernoulli"].optim.lr),
        1.0 - rate,
        int(cfgs["bernoulli"].data.batch_size),
    )
    root = streams.Stream.of_run(seed)
    shape, ncls = splits.input_shape, splits.num_classes
    with streams.seeded(root.child("init")):
        inv = build_model(cfgs["bernoulli"].model, shape, ncls).double()
        van, naive = (build_model(cfgs["vanilla"].model, shape, ncls).double() for _ in range(2))
    van.load_state_dict(inv.state_dict())
    naive.load_state_dict(inv.state_dict())
    scaled = following_linears(van)
    with torch.no_grad():
        for lin in scaled:
            lin.weight.div_(p)
    fast = {id(lin.weight) for lin in scaled}
    groups = [
        {"params": [q for q in van.parameters() if id(q) in fast], "lr": lr / p**2},
        {"params": [q for q in van.parameters() if id(q) not in fast], "lr": lr},
    ]
    opts = [
        torch.optim.SGD(inv.parameters(), lr=lr),
        torch.optim.SGD(groups, lr=lr),
        torch.optim.SGD(naive.parameters(), lr=lr),
    ]
    x, y = splits.x_train.double(), splits.y_train
    x_test = splits.x_test.double()
    g = torch.Generator().manual_seed(seed)
    worst, records = {"matched": 0.0, "naive": 0.0}, []
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(y), (bs,), generator=g)
        for model, opt in zip((inv, van, naive), opts, strict=True):
            with streams.seeded(root.child("masks", step)):  # the same masks for all three
                model.train()
                loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        if step % max(1, steps // 20) == 0 or step == steps:  # 20 checkpoints
            with torch.no_grad():
                ref, *others = (m.eval()(x_test) for m in (inv, van, naive))
                scale = ref.abs().max().item()
                for name, out in zip(("matched", "naive"), others, strict=True):
                    worst[name] = max(worst[name], (out - ref).abs().max().item() / scale)
            records.append((step, {f"exact/{k}_rel_dlogit": v for k, v in worst.items()}))
    return records

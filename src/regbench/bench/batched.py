"""``regbench bench`` lines for batched groups: S seeds trained as one program against
the plain PyTorch loop of :mod:`regbench.bench.mlp` training one seed of the same config.
Three groups (:data:`GROUPS`): 8 seeds of the width-128 MLP, 8 seeds of the MNIST-1D
authors' CNN at width 32, 4 seeds of the 1-D ResNet-20 (issue 22).

- ``program``: the batched loop alone (:class:`~regbench.batched.loop.GroupLoop`: each
  model built by the project's builder, its own data order, val every epoch, test at the
  end), like the plain loop, which tracks nothing either;
- ``ratio = program time for S seeds / plain-loop time for one seed``; the issue's target
  is 8 seeds for at most 2.5 times one seed (issue 12). ``per model`` divides by S;
- ``tracked``: the same S models through :func:`~regbench.batched.runs.run_members`,
  each its own MLflow run (run creation, params, config artifact, per-epoch metrics).
"""

from __future__ import annotations

import statistics
import time

from regbench.config import compose, compose_seeds

#: label -> (overrides on top of the MLP bench's, seeds, target ratio)
GROUPS: dict[str, tuple[list[str], int, float]] = {
    "mlp width=128": ([], 8, 2.5),
    "cnn1d width=32": (["model=cnn1d", "model.width=32"], 8, 5.0),
    "resnet20 1-D width=16": (["model=resnet20", "model.width=16"], 4, 3.0),
}


def program_seconds(cfgs) -> float:
    from regbench.batched.loop import GroupLoop
    from regbench.batched.runs import build_member

    start = time.perf_counter()  # building the models and data counts, as in hand_loop
    members = [build_member(c, [], None) for c in cfgs]
    loop = GroupLoop(members, "cpu")
    loop.fit(lambda *a: None, lambda *a: None, 0, None)
    loop.finish(lambda *a: None)
    return time.perf_counter() - start


def tracked_seconds(cfgs) -> float:
    from regbench.batched.runs import run_members

    start = time.perf_counter()
    out = run_members(cfgs, [["bench-batched"]] * len(cfgs))
    seconds = time.perf_counter() - start
    errors = [r for r in out if isinstance(r, BaseException)]
    if errors:
        raise errors[0]
    return seconds


def bench_batched(base: list[str], hand_loop, group: str, reps: int, epochs: int) -> str:
    """``base``: the MLP bench's overrides (epochs included); ``hand_loop``: its plain
    loop (:func:`regbench.bench.mlp.hand_loop`), passed in to keep bench/ acyclic;
    ``group``: a key of :data:`GROUPS`."""
    extra, seeds, target = GROUPS[group]
    if any(o.startswith("model=") for o in extra):  # another model: not the MLP's keys
        base = [o for o in base if not o.startswith("model.")]
    cfgs = compose_seeds([*base, *extra], range(seeds))
    tracked_seconds(cfgs)  # warm-up, as the other lines
    hand_loop(cfgs[0])
    hand, prog, tracked = [], [], []
    for _ in range(reps):
        hand.append(hand_loop(cfgs[0]))
        prog.append(program_seconds(cfgs))
        tracked.append(tracked_seconds(cfgs))
    h, p, t = (statistics.median(v) for v in (hand, prog, tracked))
    ratio = p / h
    ok = "ok" if ratio <= target else "MISSED"
    return (
        f"batched {group} seeds={seeds} epochs={epochs} program={p:.3f}s "
        f"hand_loop(1 seed)={h:.3f}s (target <= {target:.2f}: {ok}) ratio={ratio:.3f} "
        f"per model={ratio / seeds:.3f} tracked={t:.3f}s"
    )


def plain_sgd_loop(cfg) -> float:
    """Seconds of a plain PyTorch loop for one run of ``cfg`` with its SGD settings: same
    data, batches, epoch metrics and final test as the full stack, nothing else."""
    import torch
    import torch.nn.functional as F

    from regbench.data import build_data
    from regbench.data.batches import TensorBatches
    from regbench.nn import build_model

    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    splits = build_data(cfg.data, cfg.seed)
    model = build_model(cfg.model, splits.input_shape, splits.num_classes)
    o = cfg.optim
    opt = torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum)
    batches = TensorBatches(
        splits.x_train, splits.y_train, cfg.data.batch_size, shuffle=True, seed=cfg.seed
    )
    for _ in range(cfg.trainer.max_epochs):
        sums = torch.zeros(2)
        for x, y in batches:
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sums += torch.stack([loss.detach(), (logits.argmax(1) == y).float().mean()]) * len(y)
        _ = (sums / len(splits.y_train)).tolist()
    with torch.no_grad():
        _ = float((model(splits.x_test).argmax(1) == splits.y_test).float().mean())
    return time.perf_counter() - start


def plain_double_descent(widths: list[int], epochs: int | None = None) -> float:
    """Seconds of :func:`plain_sgd_loop` on one thread over ``widths`` of
    ``experiment=model_double_descent``, seed 0: the baseline of the issue's speed target
    for ``regbench reproduce model_double_descent``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    total = 0.0
    try:
        for w in widths:
            extra = [f"trainer.max_epochs={epochs}"] if epochs else []
            cfg = compose(["experiment=model_double_descent", f"model.width={w}", *extra])
            total += plain_sgd_loop(cfg)
    finally:
        torch.set_num_threads(threads)
    return total

"""The products-only floor of ``regbench reproduce model_double_descent --seeds N``
against its speed baseline, the plain one-thread loop's one seed (issue 22), in one
window (not part of the package: it reads the reproduction's widths and the bench's
loop, which the package's layers keep apart).

    uv run python scripts/dd_products_floor.py [--seeds 10] [--epochs 500] [--workers 2]

For every width of the reproduction, S = 2 x seeds models (both noise arms, one group as
the reproduction plans them at widths >= 27) are stacked by the batched program
(:class:`~regbench.batched.program.StackedNet`), and only its training products are
timed on one thread: per step, each linear layer's forward ``W @ X`` and weight gradient
``G @ X^T``, and the input gradient ``W^T @ G`` of every layer but the first (the data
needs none), the shapes and layout the program runs, no bias. Nothing else: no
activation, loss, optimizer, data, eval, tracking or process start. Their sum over every
step of every width, divided by the sweep's workers (a perfect split), is a floor for
the reproduction's time on this machine's BLAS; the plain loop
(:func:`regbench.bench.batched.plain_double_descent`) runs right before it. The speed
target (issue 22: at most 2x the plain loop) leaves ``2 * plain - floor`` seconds for
everything the floor leaves out.

Smaller groups (widths 2-21, up to 64 models as one padded program) are timed at S
models of their own width, which costs less than the padded product: the floor stays a
floor. Widths whose products run near the BLAS peak bound it; the steps are
``epochs x ceil(n_train / batch_size)`` per model, as the reproduction trains.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import torch
from torch import Tensor

from regbench import runtime
from regbench.batched.program import StackedNet
from regbench.bench.batched import plain_double_descent
from regbench.config import compose_seeds
from regbench.nn import build_model
from regbench.reproductions.model_double_descent import CLEAN, NOISE, WIDTHS

INPUT, CLASSES = (40,), 10  # MNIST-1D: 40 samples per signal, 10 classes


def products(width: int, seeds: int, epochs: int | None) -> tuple[list[Tensor], int, int]:
    """The stacked weights (S, out, in) of the width's program, its batch size and steps
    per model (the experiment's epochs unless ``epochs``)."""
    extra = [] if epochs is None else [f"trainer.max_epochs={epochs}"]
    cfgs = [
        c
        for noise in (NOISE, CLEAN)
        for c in compose_seeds(
            [
                "experiment=model_double_descent",
                f"model.width={width}",
                f"data.label_noise={noise}",
                *extra,
            ],
            range(seeds),
        )
    ]
    prog = StackedNet([build_model(c.model, INPUT, CLASSES) for c in cfgs], "cpu")
    weights = [prog.params[op["w"]].detach() for tok, op in prog.ops if tok.startswith("linear")]
    d = cfgs[0].data
    steps = int(cfgs[0].trainer.max_epochs) * math.ceil(int(d.n_train) / int(d.batch_size))
    return weights, int(d.batch_size), steps


def step_seconds(weights: list[Tensor], batch: int, reps: int = 5, n: int = 100) -> float:
    """One training step's products, min over ``reps`` means of ``n`` steps."""
    S = weights[0].shape[0]
    xs = [torch.randn(S, w.shape[2], batch) for w in weights]
    gs = [torch.randn(S, w.shape[1], batch) for w in weights]
    gw = [torch.empty_like(w) for w in weights]

    def step() -> None:
        for w, x in zip(weights, xs, strict=True):
            torch.bmm(w, x)
        for i in range(len(weights) - 1, -1, -1):
            torch.bmm(gs[i], xs[i].transpose(1, 2), out=gw[i])
            if i:
                torch.bmm(weights[i].transpose(1, 2), gs[i])

    for _ in range(n // 5):
        step()
    best = math.inf
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(n):
            step()
        best = min(best, (time.perf_counter() - start) / n)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=10, help="seeds per arm (default: 10)")
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs of both (default: the experiment's 500; fewer for a quick look, where "
        "the plain loop's per-run setup weighs more)",
    )
    p.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="sweep workers (default: cores)"
    )
    args = p.parse_args()
    runtime.setup()  # the CLI's process settings
    plain = plain_double_descent(WIDTHS, args.epochs)
    print(f"plain loop, 1 seed, 1 thread, {len(WIDTHS)} widths: {plain:.1f} s", flush=True)
    torch.set_num_threads(1)
    total = 0.0
    for width in WIDTHS:
        weights, batch, steps = products(width, args.seeds, args.epochs)
        sec = step_seconds(weights, batch)
        sizes = [w[0].numel() for w in weights]  # per model; the first layer: no input grad
        flop = 2 * batch * weights[0].shape[0] * (3 * sum(sizes) - sizes[0])
        total += sec * steps
        print(
            f"width {width:3d}: {sec * 1e3:7.3f} ms/step, {flop / sec / 1e9:5.1f} GFLOP/s, "
            f"{sec * steps:6.1f} worker-s for {weights[0].shape[0]} models",
            flush=True,
        )
    floor = total / args.workers
    print(
        f"products only: {total:.1f} worker-s, {floor:.1f} s on {args.workers} workers; "
        f"floor / plain = {floor / plain:.2f}; a ratio of 2.0 leaves {2 * plain - floor:.1f} s "
        "for everything else"
    )


if __name__ == "__main__":
    main()

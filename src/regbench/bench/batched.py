"""``regbench bench`` line for batched groups: S seeds of the width-128 MLP trained as one
program (:func:`regbench.batched.runs.run_members`, every model its own tracked MLflow
run) against the plain PyTorch loop of :mod:`regbench.bench.mlp` training one seed.

``ratio = batched time for S seeds / plain-loop time for one seed``; the issue's target is
8 seeds for at most 2.5 times one seed (issue 12). ``per model`` compares with the plain
loop running the same S models one by one (S times one seed, measured in this process).
"""

from __future__ import annotations

import statistics
import time

from regbench.bench.mlp import _overrides, hand_loop
from regbench.config import compose

TARGET = 2.5


def batched_seconds(cfgs) -> float:
    from regbench.batched.runs import run_members

    start = time.perf_counter()
    out = run_members(cfgs, [["bench-batched"]] * len(cfgs))
    seconds = time.perf_counter() - start
    errors = [r for r in out if isinstance(r, BaseException)]
    if errors:
        raise errors[0]
    return seconds


def bench_batched(seeds: int, width: int, reps: int, epochs: int, extra=()) -> str:
    base = _overrides(width, epochs) + list(extra)
    cfgs = [compose([*base, f"seed={s}"]) for s in range(seeds)]
    batched_seconds(cfgs)  # warm-up, as the other lines
    hand_loop(cfgs[0])
    hand, batch = [], []
    for _ in range(reps):
        hand.append(hand_loop(cfgs[0]))
        batch.append(batched_seconds(cfgs))
    h, b = statistics.median(hand), statistics.median(batch)
    ratio = b / h
    ok = "ok" if ratio <= TARGET else "MISSED"
    return (
        f"batched mlp width={width} seeds={seeds} epochs={epochs} batched={b:.3f}s "
        f"hand_loop(1 seed)={h:.3f}s (target <= {TARGET:.2f}: {ok}) ratio={ratio:.3f} "
        f"per model vs one by one={b / (seeds * h):.3f}"
    )

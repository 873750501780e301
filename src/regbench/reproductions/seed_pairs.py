"""What reproductions' analyses share: per-arm, per-seed values read from finished runs,
each seed's curve along a grid axis, the per-seed pairing of two arms, an arm's best
setting by its mean over seeds, a verdict on the seeds whose statistic is defined, the
display of a claim in percentage points, a least-squares slope and He init from a stream.
Figures of these values: :mod:`regbench.report.plots` (``arm_bands``, ``paired_panel``);
runs lost to divergence: :mod:`regbench.reproductions.divergence`."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import replace

from regbench.report import RunRecord, mean_ci
from regbench.report.claims import Claim, Verdict, judge

#: MNIST-1D MLP settings every tiny scale shares: seconds per run, same code path
TINY_DATA = ["data.n_train=600", "data.n_test=200", "model.width=32"]
#: chance-level test error of the 10 MNIST-1D classes
CHANCE_ERR = 0.9
#: binomial standard error of a 32% test error on MNIST-1D's 1,000 test samples: the
#: MNIST-1D authors' MLP reaches 68% test accuracy (their README), so
#: sqrt(0.32 * 0.68 / 1000) = 1.475 points
TEST_SE = math.sqrt(0.32 * 0.68 / 1000)
#: how a claim on a difference of error fractions reads: in percentage points
PTS = {"scale": 100, "digits": 2, "unit": " pts"}


def error_on_test(r: RunRecord) -> float:
    """A run's test error, 1 - test accuracy (``test/acc``, logged by every trained run)."""
    return 1 - r.metrics["test/acc"]


def by_arm_seed(
    runs: Sequence[RunRecord],
    arm: Callable[[RunRecord], Hashable],
    stat: Callable[[RunRecord], float],
    arms: Sequence[Hashable] = (),
) -> dict[Hashable, dict[int, float]]:
    """``stat`` of every run as {arm: {seed: value}}, seeds in order; arms in sorted order,
    or, given ``arms``, exactly those, in that order (empty where one has no runs)."""
    out: dict[Hashable, dict[int, float]] = {a: {} for a in arms}
    for r in runs:
        out.setdefault(arm(r), {})[r.seed] = float(stat(r))
    keys = list(arms) or sorted(out, key=str)
    return {k: dict(sorted(out[k].items())) for k in keys}


def seed_curves(
    *values: Mapping[float, Mapping[int, float]],
) -> dict[int, tuple[list[float], ...]]:
    """Each seed's curves along a grid axis, from per-point values (x -> {seed: value}):
    {seed: (xs, first values along xs, second values along xs, ...)}, xs the sorted grid
    values of the first mapping, for the seeds it has at every x."""
    xs = sorted(values[0])
    seeds = sorted(set.intersection(*(set(values[0][x]) for x in xs)))
    return {s: (xs, *([v[x][s] for x in xs] for v in values)) for s in seeds}


def judge_defined(claim: Claim, values: Mapping[int, float], n_seeds: int) -> Verdict:
    """``claim``'s verdict on the seeds whose statistic is defined (``values``: seed ->
    value); when fewer than ``n_seeds`` have one, its note says how many did not."""
    v = judge(claim, [values[s] for s in sorted(values)])
    if len(values) < n_seeds:
        extra = f"statistic undefined in {n_seeds - len(values)} of {n_seeds} seeds"
        v = replace(v, note="; ".join(filter(None, [v.note, extra])))
    return v


def pair_seeds(
    a: Mapping[int, float],
    b: Mapping[int, float],
    op: Callable[[float, float], float] = operator.sub,
) -> dict[int, float]:
    """``op(a[s], b[s])`` for every seed both arms have, in seed order (by default the
    per-seed difference a - b that a paired claim judges)."""
    return {s: op(a[s], b[s]) for s in sorted(set(a) & set(b))}


def best_by_mean(
    values: Mapping[Hashable, Iterable[float] | Mapping[int, float]],
    candidates: Iterable[Hashable],
    lowest: bool = True,
) -> Hashable:
    """The candidate whose values (per seed) have the lowest mean (highest with
    ``lowest=False``), the first of ties: an arm's best setting, chosen on validation."""

    def mean(k: Hashable) -> float:
        v = values[k]
        return mean_ci(v.values() if isinstance(v, Mapping) else v).mean

    return (min if lowest else max)(candidates, key=mean)


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys on xs."""
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def he_init_from_stream(model, seed: int, purpose: str) -> None:
    """Every weight N(0, 2 / fan_in) (He et al. 2015, arXiv 1502.01852) and every bias 0,
    drawn from the stream (seed, purpose) instead of torch's global generator; for direct
    computations outside a training run. Norm layers keep their (1, 0) affine init."""
    import torch

    from regbench.probes.seeding import generator

    g = generator(seed, purpose)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Linear | torch.nn.Conv1d | torch.nn.Conv2d):
                w = m.weight
                fan_in = w[0].numel()
                w.copy_(torch.randn(w.shape, generator=g, dtype=w.dtype) * math.sqrt(2 / fan_in))
                if m.bias is not None:
                    m.bias.zero_()

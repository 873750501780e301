"""Helpers shared by the atlas part 3 reproductions (issue 26): per-arm, per-seed values
read from finished runs, a least-squares slope, He init from a stream, and a figure panel
that shows the pairing a paired claim uses (one grey line per seed). Runs lost to
divergence: :mod:`regbench.reproductions.divergence`."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence

from regbench.report import RunRecord, mean_ci
from regbench.report.plots import COLORS

#: MNIST-1D MLP settings every tiny scale shares: seconds per run, same code path
TINY_DATA = ["data.n_train=600", "data.n_test=200", "model.width=32"]
#: chance-level test error of the 10 MNIST-1D classes
CHANCE_ERR = 0.9
#: binomial standard error of a 32% test error on MNIST-1D's 1,000 test samples: the
#: MNIST-1D authors' MLP reaches 68% test accuracy (their README), so
#: sqrt(0.32 * 0.68 / 1000) = 1.475 points
TEST_SE = math.sqrt(0.32 * 0.68 / 1000)


def by_arm_seed(
    runs: Sequence[RunRecord],
    arm: Callable[[RunRecord], Hashable],
    stat: Callable[[RunRecord], float],
) -> dict[Hashable, dict[int, float]]:
    """``stat`` of every run as {arm: {seed: value}}, arms in sorted order."""
    out: dict[Hashable, dict[int, float]] = {}
    for r in runs:
        out.setdefault(arm(r), {})[r.seed] = float(stat(r))
    return {k: dict(sorted(out[k].items())) for k in sorted(out, key=str)}


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


def paired_panel(
    ax,
    values: dict[Hashable, dict[int, float]],
    arms: Sequence[Hashable],
    labels: Sequence[str],
    scale: float = 100.0,
) -> None:
    """Per-seed values of ``arms`` side by side (dots), one grey line per seed joining its
    values across arms (the pairing of a paired claim), and each arm's mean with its 95%
    t-interval (squares)."""
    seeds = sorted(set.intersection(*(set(values.get(a, {})) for a in arms)) or set())
    for s in seeds:
        ax.plot(range(len(arms)), [scale * values[a][s] for a in arms], color="0.75", lw=1)
    for i, a in enumerate(arms):
        vals = [scale * v for v in values.get(a, {}).values()]
        color = COLORS[i % len(COLORS)]
        ax.scatter([i] * len(vals), vals, color=color, s=14, zorder=2)
        if vals:
            sm = mean_ci(vals)
            half = sm.half if sm.n > 1 else 0.0
            ax.errorbar(i + 0.12, sm.mean, yerr=half, fmt="s", color=color, capsize=3, zorder=3)
    ax.set(xticks=range(len(arms)), xticklabels=list(labels))

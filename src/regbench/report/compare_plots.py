"""Figures of ``regbench compare``: final metrics against the varied axis, and learning
curves of the ``val/`` metrics, each as the mean over seeds with its 95% t-interval band."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from regbench.report.groups import Group, summarize
from regbench.report.plots import COLORS, band
from regbench.report.stats import mean_ci


def _number(v: str) -> float | None:
    try:
        return float(v)
    except ValueError:
        return None


def x_axis(groups: Sequence[Group]) -> str | None:
    """The setting drawn on the x axis: the numeric one with the most values, else the
    one with the most values (ties: the first); None when nothing varies."""
    keys = list(groups[0].settings) if groups else []
    if not keys:
        return None

    def rank(k: str) -> tuple[bool, int]:
        vals = {g.settings[k] for g in groups}
        numeric = all(_number(v) is not None for v in vals)
        return numeric, len(vals)

    return max(keys, key=lambda k: (rank(k), -keys.index(k)))


def _panels(n: int):
    """``n`` axes, in one row up to 2, else two per row."""
    import matplotlib.pyplot as plt

    cols = min(n, 2)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.8 * cols, 3.4 * rows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _errorbar(ax, pos, sums, label: str, color: str, offset: float) -> None:
    """Categorical settings: the mean with its interval as an error bar, unconnected."""
    x = [p + offset for p in pos]
    mean = [s.mean for s in sums]
    err = [0.0 if s.n < 2 else s.half for s in sums]
    ax.errorbar(x, mean, yerr=err, fmt="o", ms=4, capsize=4, color=color, label=label)


def metric_vs_axis(groups: Sequence[Group], metrics: Sequence[str]):
    """One panel per metric: its final value against the x-axis setting, one series per
    combination of the other settings. A numeric setting gets a line with a band; a
    categorical one evenly spaced ticks with error bars (no line between categories)."""
    key = x_axis(groups)
    fig, axes = _panels(len(metrics))
    values = list(dict.fromkeys(g.settings[key] for g in groups)) if key else ["(all runs)"]
    numeric = key is not None and all(_number(v) is not None for v in values)
    order = sorted(values, key=_number) if numeric else values
    series: dict[str, list[Group]] = defaultdict(list)
    for g in groups:
        rest = ", ".join(f"{k}={v}" for k, v in g.settings.items() if k != key)
        series[rest].append(g)
    for ax, metric in zip(axes, metrics, strict=True):
        for i, (label, members) in enumerate(series.items()):
            members = sorted(members, key=lambda g: order.index(g.settings[key]) if key else 0)
            at = [g.settings[key] if key else order[0] for g in members]
            sums = [summarize(g, metric) for g in members]
            color = COLORS[i % len(COLORS)]
            if numeric:
                band(ax, [_number(v) for v in at], sums, label or "mean", color)
            else:
                shift = 0.08 * (i - (len(series) - 1) / 2)  # side by side, not on top
                _errorbar(ax, [order.index(v) for v in at], sums, label or "mean", color, shift)
        if not numeric:
            ax.set_xticks(range(len(order)), order, rotation=20 if len(order) > 4 else 0)
            ax.set_xlim(-0.5, len(order) - 0.5)
        ax.set_xlabel(key or "")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    if len(series) > 1:
        axes[0].legend(fontsize=7)
    fig.suptitle("final metrics: mean over seeds with its 95% t-interval", fontsize=9)
    return fig


def curve_summaries(histories: dict[int, list[tuple[int, float]]]):
    """Per step, the mean and t-interval over the seeds that logged that step."""
    by_step: dict[int, list[float]] = defaultdict(list)
    for hist in histories.values():
        for step, value in hist:
            by_step[step].append(value)
    steps = sorted(by_step)
    return steps, [mean_ci(by_step[s]) for s in steps]


def learning_curves(groups: Sequence[Group], histories: dict[str, dict], metrics: Sequence[str]):
    """One panel per ``val/`` metric, one line per configuration with its band.
    ``histories[run_id][metric]`` is ``[(step, value), ...]``."""
    from matplotlib.ticker import MaxNLocator

    fig, axes = _panels(len(metrics))
    for ax, metric in zip(axes, metrics, strict=True):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        for i, g in enumerate(groups):
            per_seed = {s: histories[r.run_id].get(metric, []) for s, r in g.runs.items()}
            steps, sums = curve_summaries(per_seed)
            if steps:
                band(ax, steps, sums, g.label, COLORS[i % len(COLORS)], marker="")
        ax.set_xlabel("step (the epoch, for Lightning runs)")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("learning curves: mean over seeds, 95% t-interval band", fontsize=9)
    return fig

"""Figures of ``regbench compare``: final metrics against the varied setting (or the
reproduction's arms), and learning curves of the ``val/`` metrics, each as the mean over
seeds with its 95% t-interval.

Readable with two seeds and with many configurations: series differ in line style and
marker as well as colour and are dodged sideways, the legend sits below the panels (long
configuration labels do not cover the data), and axes stay inside what a metric can be
(an accuracy between 0 and 1, a loss or a time above 0), however wide a two-seed
interval is.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from regbench.report.groups import Group, summarize
from regbench.report.plots import COLORS, DODGE_PT, band, clip_to, style
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


def metric_range(metric: str) -> tuple[float | None, float | None]:
    """What a metric can be: accuracies in [0, 1], losses, errors and times >= 0."""
    leaf = metric.rsplit("/", 1)[-1]
    if "acc" in leaf:
        return 0.0, 1.0
    if metric.startswith("time/") or any(w in leaf for w in ("loss", "err", "_s")):
        return 0.0, None
    return None, None


def _panels(n: int):
    """``n`` axes, in one row up to 2, else two per row."""
    import matplotlib.pyplot as plt

    cols = min(n, 2)
    rows = -(-n // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(4.8 * cols, 3.4 * rows + 0.6), squeeze=False, layout="constrained"
    )
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _legend_below(fig, ax) -> None:
    """One legend for the figure, below the panels, so labels never cover data."""
    handles, labels = ax.get_legend_handles_labels()
    if len(handles) > 1:
        ncol = 1 if max(map(len, labels)) > 40 else min(len(labels), 3)
        fig.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize=7)


def _short(key: str, keys: Sequence[str]) -> str:
    """``model.head_dropout`` -> ``head_dropout`` where no other key ends the same way."""
    leaf = key.rsplit(".", 1)[-1]
    return leaf if sum(k.rsplit(".", 1)[-1] == leaf for k in keys) == 1 else key


def _errorbar(ax, pos, sums, label: str, i: int, dodge: float) -> None:
    """Categorical settings: the mean with its interval as an error bar, unconnected."""
    from regbench.report.plots import dodged, include

    mean = [s.mean for s in sums]
    lo = [s.lo if s.n > 1 else s.mean for s in sums]
    hi = [s.hi if s.n > 1 else s.mean for s in sums]
    err = [
        [m - a for m, a in zip(mean, lo, strict=True)],
        [b - m for m, b in zip(mean, hi, strict=True)],
    ]
    st = style(i)
    ax.errorbar(
        pos, mean, yerr=err, fmt=st["marker"], ms=4, capsize=3, color=st["color"],
        label=label, transform=dodged(ax, dodge),
    )  # fmt: skip
    include(ax, pos * 3, mean + lo + hi)


def metric_vs_axis(groups: Sequence[Group], metrics: Sequence[str], base: Group | None = None):
    """One panel per metric: its final value against the x-axis setting, one series per
    combination of the other settings. Named groups (a reproduction's arms) are the x
    axis' categories, one point each. A numeric setting gets a line with a band; a
    categorical one evenly spaced ticks with error bars (no line between categories).
    ``base``: the baseline, marked on its tick where a tick is one configuration."""
    named = any(g.name for g in groups)
    inner = list(groups[0].within) if named and groups else []
    key = None if named else x_axis(groups)
    fig, axes = _panels(len(metrics))
    if named and len(inner) == 1:  # arms over a setting that varies within them (a width)
        key = inner[0]
        values = list(dict.fromkeys(g.within[key] for g in groups))
        order = sorted(values, key=_number) if _all_numeric(values, key) else values
        at_of = {id(g): g.within[key] for g in groups}
        series: dict[str, list[Group]] = defaultdict(list)
        for g in groups:
            series[g.arm].append(g)
        named = False
    elif named:  # the arms themselves are the categories
        order = [g.label for g in groups]
        at_of = {id(g): g.label for g in groups}
        series = {"": list(groups)}
    else:
        values = list(dict.fromkeys(g.settings[key] for g in groups)) if key else ["(all runs)"]
        order = sorted(values, key=_number) if _all_numeric(values, key) else values
        at_of = {id(g): g.settings[key] if key else order[0] for g in groups}
        series = defaultdict(list)
        keys = list(groups[0].settings) if groups else []
        for g in groups:
            rest = ", ".join(f"{_short(k, keys)}={v}" for k, v in g.settings.items() if k != key)
            series[rest].append(g)
    numeric = not named and _all_numeric(order, key)
    for ax, metric in zip(axes, metrics, strict=True):
        for i, (label, members) in enumerate(series.items()):
            members = sorted(members, key=lambda g: order.index(at_of[id(g)]))
            at = [at_of[id(g)] for g in members]
            sums = [summarize(g, metric) for g in members]
            shift = (i - (len(series) - 1) / 2) * DODGE_PT  # side by side, not on top
            if numeric:
                band(ax, [_number(v) for v in at], sums, label or "mean", COLORS[i % 6],
                     dodge=shift)  # fmt: skip
            else:
                _errorbar(ax, [order.index(v) for v in at], sums, label or "mean", i, shift)
        if numeric:
            xs = [_number(v) for v in order]
            if min(xs) > 0 and max(xs) / min(xs) >= 20:  # widths 4 .. 1024, rates 1e-4 .. 1e-1
                ax.set_xscale("log")
            ax.set_xticks(xs, order)
            ax.minorticks_off()
        else:
            one = len(series) == 1  # a tick is one configuration: the baseline can be marked
            ticks = [f"{v}\n(baseline)" if one and base is not None and at_of.get(id(base)) == v
                     else v for v in order]  # fmt: skip
            ax.set_xticks(range(len(order)), ticks, rotation=20 if len(order) > 3 else 0,
                          ha="right" if len(order) > 3 else "center", fontsize=7)  # fmt: skip
            ax.set_xlim(-0.5, len(order) - 0.5)
        clip_to(ax, *metric_range(metric))
        ax.set_xlabel(key or "")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    if len(series) > 1:
        _legend_below(fig, axes[0])
    fig.suptitle("final metrics: mean over seeds with its 95% t-interval", fontsize=9)
    return fig


def _all_numeric(values: Sequence[str], key: str | None) -> bool:
    return key is not None and all(_number(v) is not None for v in values)


def curve_summaries(histories: dict[int, list[tuple[int, float]]]):
    """Per step, the mean and t-interval over the seeds that logged that step."""
    by_step: dict[int, list[float]] = defaultdict(list)
    for hist in histories.values():
        for step, value in hist:
            by_step[step].append(value)
    steps = sorted(by_step)
    return steps, [mean_ci(by_step[s]) for s in steps]


def learning_curves(
    groups: Sequence[Group],
    histories: dict[str, dict],
    metrics: Sequence[str],
    base: Group | None = None,
):
    """One panel per ``val/`` metric, one line per configuration with its band.
    ``histories[run_id][metric]`` is ``[(step, value), ...]``. Training runs (``train.run``
    and batched groups, which log ``time/epoch_s``; their step is the epoch index) are
    drawn against the number of epochs trained, 1 .. n; other runs against their step."""
    from matplotlib.ticker import MaxNLocator

    epochs = all("time/epoch_s" in r.metrics for g in groups for r in g.runs.values())
    fig, axes = _panels(len(metrics))
    alpha = max(0.05, min(0.15, 0.3 / max(len(groups), 1)))  # overlapping bands stay light
    for ax, metric in zip(axes, metrics, strict=True):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        for i, g in enumerate(groups):
            per_seed = {s: histories[r.run_id].get(metric, []) for s, r in g.runs.items()}
            steps, sums = curve_summaries(per_seed)
            if steps:
                x = [s + 1 for s in steps] if epochs else steps
                marker = "" if len(x) > 12 else None
                color = COLORS[i % len(COLORS)]
                label = f"{g.label} (baseline)" if g is base else g.label
                band(ax, x, sums, label, color, marker=marker, alpha=alpha)
        clip_to(ax, *metric_range(metric))
        ax.set_xlabel("epoch" if epochs else "step")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    _legend_below(fig, axes[0])
    fig.suptitle("learning curves: mean over seeds, 95% t-interval band", fontsize=9)
    return fig

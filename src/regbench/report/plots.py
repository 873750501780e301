"""Figure helpers (matplotlib, Agg backend): one style for every report.

Readable at every scale: series differ in colour *and* line style and marker (a line under
another stays visible through the dashes), a series with a single x value is drawn as a
point with its interval as an error bar (a line or band over one x is invisible but still
stretches the axes), and such points are dodged sideways by a few points of screen space
so arms at the same x do not hide each other.

Reproductions draw per-seed values through four helpers: :func:`seed_band` (mean ± CI over
seeds along a grid axis), :func:`arm_bands` (one such band per arm), :func:`curve_band`
(the mean of curves, step by step) and :func:`paired_panel` (the per-seed pairing behind
a paired claim).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.transforms import offset_copy  # noqa: E402

from regbench.report.stats import mean_ci  # noqa: E402

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
LINESTYLES = ["-", "--", "-.", ":", (0, (5, 1, 1, 1)), (0, (3, 1))]
MARKERS = ["o", "s", "^", "D", "v", "P"]
#: sideways step between dodged series, in points (1/72 inch)
DODGE_PT = 7.0


def series_index(color: str) -> int:
    """A series' place in the style cycle, from its colour (callers pick ``COLORS[i]``)."""
    return COLORS.index(color) if color in COLORS else 0


def style(i: int) -> dict:
    """Colour, line style and marker of the ``i``-th series."""
    return {
        "color": COLORS[i % len(COLORS)],
        "ls": LINESTYLES[i % len(LINESTYLES)],
        "marker": MARKERS[i % len(MARKERS)],
    }


def new_figure(ncols: int = 1, width: float = 5.0, height: float = 3.6):
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, list(axes[0])


def dodged(ax, points: float):
    """``ax``'s data transform shifted ``points`` sideways (screen space, any x scale).
    Matplotlib leaves what is drawn through it out of the autoscaled limits: draw with
    :func:`plot` or :func:`band`, which add the data themselves."""
    if not points:
        return ax.transData
    return offset_copy(ax.transData, fig=ax.figure, x=points, y=0.0, units="points")


def include(ax, x, y) -> None:
    """Add points to the axes' data limits (for artists on a dodged transform)."""
    pts = [(a, b) for a, b in zip(x, y, strict=True) if b == b]  # NaN-free
    if pts:
        ax.update_datalim(pts)
        ax.autoscale_view()


def plot(ax, x, y, dodge: float = 0.0, **kw):
    """``ax.plot`` shifted ``dodge`` points sideways, inside the autoscaled limits."""
    x, y = list(x), list(y)
    out = ax.plot(x, y, transform=dodged(ax, dodge), **kw)
    if dodge:
        include(ax, x, y)
    return out


def band(
    ax,
    x,
    summaries,
    label: str,
    color: str,
    scale: float = 1.0,
    marker: str | None = None,
    ls=None,
    dodge: float | None = None,
    alpha: float = 0.15,
) -> None:
    """Mean line with its 95% CI as a shaded band (no band for one seed).

    Line style and marker follow the colour's place in :data:`COLORS` unless given
    (``marker=""``: none). With one x value the mean is a point with its interval as an
    error bar, dodged by the series' place (``dodge``: points, to override)."""
    i = series_index(color)
    marker = MARKERS[i % len(MARKERS)] if marker is None else marker
    ls = LINESTYLES[i % len(LINESTYLES)] if ls is None else ls
    x = list(x)
    mean = [s.mean * scale for s in summaries]
    spread = all(s.n > 1 for s in summaries)
    lo = [s.lo * scale if spread else m for s, m in zip(summaries, mean, strict=True)]
    hi = [s.hi * scale if spread else m for s, m in zip(summaries, mean, strict=True)]
    if len(x) == 1:
        shift = (i - 2.5) * DODGE_PT if dodge is None else dodge
        err = [[mean[0] - lo[0]], [hi[0] - mean[0]]]
        ax.errorbar(
            x, mean, yerr=err if spread else None, fmt=marker or "o", ms=4, capsize=3,
            color=color, label=label, transform=dodged(ax, shift),
        )  # fmt: skip
        include(ax, x * 3, [mean[0], lo[0], hi[0]])
        return
    plot(ax, x, mean, dodge or 0.0, marker=marker, ms=3, ls=ls, color=color, label=label)
    if spread:
        tr = dodged(ax, dodge or 0.0)
        ax.fill_between(x, lo, hi, color=color, alpha=alpha, linewidth=0, transform=tr)
        if dodge:
            include(ax, x + x, lo + hi)


def curve_band(ax, x, curves: Sequence[Sequence[float]], label: str, color: str, **kw) -> None:
    """:func:`band` of the mean ± 95% CI over ``curves`` (one per seed or draw, all as long
    as ``x``), point by point."""
    band(ax, x, [mean_ci(col) for col in zip(*curves, strict=True)], label, color, **kw)


def seed_band(
    ax, values: Mapping[float, Mapping[int, float]], label: str, color: str, **kw
) -> None:
    """:func:`band` along the sorted grid values of ``values`` (x -> {seed: value}): the
    mean ± 95% CI over seeds at each x."""
    xs = sorted(values)
    band(ax, xs, [mean_ci(values[x].values()) for x in xs], label, color, **kw)


def arm_bands(
    ax,
    values: Mapping[tuple[Hashable, float], Mapping[int, float]],
    arms: Sequence[Hashable],
    labels: Sequence[str],
    scale: float = 1.0,
    dodge: bool = False,
    **kw,
) -> None:
    """One :func:`seed_band` per arm over the grid values it has, from per-seed values
    ``values[(arm, x)] = {seed: value}``: the i-th arm in the i-th style, labelled
    ``labels[i]``. ``dodge``: the arms side by side, :data:`DODGE_PT` apart (equal curves
    stay visible)."""
    for i, arm in enumerate(arms):
        by_x = {x: v for (a, x), v in values.items() if a == arm and v}
        shift = (i - (len(arms) - 1) / 2) * DODGE_PT if dodge else None
        seed_band(ax, by_x, labels[i], COLORS[i], scale=scale, dodge=shift, **kw)


def paired_panel(
    ax,
    values: Mapping[Hashable, Mapping[int, float]],
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


def log_ticks(ax, values) -> None:
    """A log x axis labelled at exactly ``values`` (widths, batch sizes), no minor ticks."""
    ax.set(xscale="log", xticks=list(values), xticklabels=[f"{v:g}" for v in values])
    ax.minorticks_off()


def value_ticks(ax, values, axis: str = "x") -> None:
    """Ticks at exactly the grid's ``values`` (a few rates, one rate): no axis reading
    0.48 ... 0.52 around a single value."""
    values = sorted(set(values))
    getattr(ax, f"set_{axis}ticks")(values, [f"{v:g}" for v in values])
    if axis == "x":
        ax.minorticks_off()


def log_labels(ax, axis: str = "y") -> None:
    """Label a log axis in plain numbers, at 1, 2, 5 x 10^k (1, 1.2, 1.5, 2, 3, 5, 7 x 10^k
    within a decade): the default labels only 10^k, which may be one tick or none. Call
    once everything is drawn (the density follows the limits then)."""
    import math

    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    a = getattr(ax, f"{axis}axis")
    lo, hi = getattr(ax, f"get_{axis}lim")()
    narrow = lo > 0 and math.log10(hi / lo) < 1
    subs = (1.0, 1.2, 1.5, 2.0, 3.0, 5.0, 7.0) if narrow else (1.0, 2.0, 5.0)
    a.set_major_locator(LogLocator(base=10, subs=subs))
    a.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    a.set_minor_formatter(NullFormatter())


def clip_to(ax, lo: float | None = None, hi: float | None = None, axis: str = "y") -> None:
    """Keep the axis inside a quantity's possible range (0-100% for accuracy): a wide
    t-interval over two seeds must not make the axis read -20%."""
    a, b = getattr(ax, f"get_{axis}lim")()
    lo_ = a if lo is None else max(a, lo)
    hi_ = b if hi is None else min(b, hi)
    if lo_ < hi_:
        getattr(ax, f"set_{axis}lim")(lo_, hi_)


def save(fig, path: Path) -> Path:
    """Save deterministically (no timestamp in the metadata) and close. A PNG also gets a
    vector copy beside it (same name, ``.svg``): ``report.md`` shows the PNG, the results
    site (``regbench site``) the SVG. Returns the path asked for."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fig.get_layout_engine() is None:  # constrained layout (legend below) lays out itself
        fig.tight_layout()
    fig.savefig(path, dpi=120, metadata={"Software": None})
    if path.suffix == ".png":
        # a fixed hash salt: the SVG's element ids, else random, are the same every time
        with plt.rc_context({"svg.hashsalt": "regbench", "svg.fonttype": "path"}):
            fig.savefig(path.with_suffix(".svg"), metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return path


def vector_copy(path: Path) -> Path | None:
    """The SVG :func:`save` wrote beside a PNG figure, if there is one."""
    svg = path.with_suffix(".svg")
    return svg if path.suffix == ".png" and svg.is_file() else None

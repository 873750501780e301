"""Figure helpers (matplotlib, Agg backend): one style for every report."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def new_figure(ncols: int = 1, width: float = 5.0, height: float = 3.6):
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, list(axes[0])


def band(ax, x, summaries, label: str, color: str, scale: float = 1.0, marker: str = "o") -> None:
    """Mean line with its 95% CI as a shaded band (no band for one seed)."""
    mean = [s.mean * scale for s in summaries]
    ax.plot(x, mean, marker=marker, ms=3, color=color, label=label)
    if all(s.n > 1 for s in summaries):
        ax.fill_between(
            x,
            [s.lo * scale for s in summaries],
            [s.hi * scale for s in summaries],
            color=color,
            alpha=0.2,
            linewidth=0,
        )


def log_ticks(ax, values) -> None:
    """A log x axis labelled at exactly ``values`` (widths, batch sizes), no minor ticks."""
    ax.set(xscale="log", xticks=list(values), xticklabels=[str(v) for v in values])
    ax.minorticks_off()


def save(fig, path: Path) -> Path:
    """Save deterministically (no timestamp in the metadata) and close. A PNG also gets a
    vector copy beside it (same name, ``.svg``): ``report.md`` shows the PNG, the results
    site (``regbench site``) the SVG. Returns the path asked for."""
    path.parent.mkdir(parents=True, exist_ok=True)
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

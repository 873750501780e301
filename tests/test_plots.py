"""Figure helpers: what is drawn is what the axes span, series at the same x stay apart,
and axes stay inside what a quantity can be."""

from __future__ import annotations

import pytest

from regbench.report.plots import (
    COLORS,
    DODGE_PT,
    LINESTYLES,
    band,
    clip_to,
    log_labels,
    new_figure,
    plot,
    value_ticks,
)
from regbench.report.stats import mean_ci


def test_one_x_value_is_an_error_bar_and_the_axes_span_its_interval():
    fig, (ax,) = new_figure()
    s = mean_ci([0.2, 0.3, 0.25])
    band(ax, [0.5], [s], "arm", COLORS[0], scale=100)
    assert not ax.collections or all(len(c.get_paths()) > 0 for c in ax.collections)
    lo, hi = ax.get_ylim()
    assert lo <= s.lo * 100 and hi >= s.hi * 100  # the interval is inside the axes
    assert hi - lo < 2 * (s.hi - s.lo) * 100  # and the axes are not stretched beyond it
    value_ticks(ax, [0.5])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.5"]


def test_series_at_the_same_x_are_dodged_apart_on_screen():
    fig, (ax,) = new_figure()
    s = mean_ci([1.0, 1.2])
    band(ax, [0.5], [s], "a", COLORS[0])
    band(ax, [0.5], [s], "b", COLORS[1])
    fig.canvas.draw()
    marks = [c.lines[0] for c in ax.containers]  # each error bar's mean marker
    xs = [m.get_transform().transform([(0.5, s.mean)])[0][0] for m in marks]
    points = abs(xs[1] - xs[0]) * 72 / fig.dpi  # display pixels -> points
    assert points == pytest.approx(DODGE_PT, rel=1e-6)


def test_lines_differ_in_style_and_dodged_plots_count_for_the_limits():
    fig, (ax,) = new_figure()
    s = [mean_ci([1.0, 2.0]), mean_ci([2.0, 3.0])]
    band(ax, [1, 2], s, "a", COLORS[0])
    band(ax, [1, 2], s, "b", COLORS[1])
    assert ax.lines[0].get_linestyle() != ax.lines[1].get_linestyle()
    assert ax.lines[1].get_linestyle() == "--" == LINESTYLES[1]
    plot(ax, [3], [10.0], DODGE_PT, marker="x")  # drawn on a shifted transform
    assert ax.get_ylim()[1] >= 10.0 and ax.get_xlim()[1] >= 3


def test_clip_to_keeps_an_accuracy_axis_inside_0_100_and_log_labels_are_plain():
    fig, (ax, ax2) = new_figure(2)
    band(ax, [1, 2], [mean_ci([0.1, 0.5]), mean_ci([0.2, 0.3])], "acc", COLORS[0], scale=100)
    assert ax.get_ylim()[0] < 0  # a two-seed t-interval reaches below 0%
    clip_to(ax, 0, 100)
    lo, hi = ax.get_ylim()
    assert lo == 0 and hi <= 100
    ax2.plot([1, 2], [1.1, 1.9])
    ax2.set_yscale("log")
    log_labels(ax2)
    fig.canvas.draw()
    shown = [t.get_text() for t in ax2.get_yticklabels() if t.get_text()]
    assert "1.5" in shown and all("10^" not in t and "times" not in t for t in shown)

"""Runs of a reproduction's grid grouped by its declared axes, summarized over seeds:
the one place that turns a reproduction's finished runs into per-point, per-seed values
(``report.groups`` groups a sweep by whatever varies, for ``regbench compare``).

    groups = group_by_axes(runs, {"data.label_noise": float, "model.width": int})
    err = per_seed(groups, lambda r: 1 - r.metrics["test/acc"])  # point -> {seed: value}
    curve = summarize_seeds(err)                                  # point -> Summary
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from regbench.report.runs import RunRecord
from regbench.report.stats import Summary, mean_ci

Point = tuple[Any, ...]


def group_by_axes(
    runs: list[RunRecord], axes: Mapping[str, Callable[[str], Any]]
) -> dict[Point, list[RunRecord]]:
    """Runs by their values on ``axes`` (param key -> cast), in sorted point order, each
    group sorted by seed. A run without one of the axes' params is an error: a report
    must not silently drop runs."""
    out: dict[Point, list[RunRecord]] = {}
    for r in runs:
        point = tuple(r.p(k, cast) for k, cast in axes.items())
        out.setdefault(point, []).append(r)
    return {k: sorted(out[k], key=lambda r: r.seed) for k in sorted(out)}


def per_seed(
    groups: Mapping[Point, list[RunRecord]], stat: Callable[[RunRecord], float]
) -> dict[Point, dict[int, float]]:
    """``stat`` of every run, by point and seed (the input of paired claims)."""
    return {k: {r.seed: float(stat(r)) for r in rs} for k, rs in groups.items()}


def summarize_seeds(values: Mapping[Point, Mapping[int, float]]) -> dict[Point, Summary]:
    """Mean and 95% t-interval over seeds, per point."""
    return {k: mean_ci(list(v.values())) for k, v in values.items()}


def axis_values(groups: Mapping[Point, Any], i: int) -> list:
    """The sorted distinct values of the ``i``-th axis."""
    return sorted({k[i] for k in groups})


def fewest_seeds(groups: Mapping[Point, list[RunRecord]]) -> int:
    """Seeds of the point with the fewest (what every claim on the grid can rely on)."""
    return min((len(rs) for rs in groups.values()), default=0)

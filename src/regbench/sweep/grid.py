"""Grids as Optuna studies: every point is an enqueued trial with fixed params.

Unlike Optuna's GridSampler, the parent enqueues exactly the points that have no
COMPLETE (or PRUNED, RUNNING, WAITING) trial, so a rerun skips completed points, retries
failed ones, and a grid given more values runs only the new points.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection
from typing import Any

import optuna
from optuna.trial import TrialState

from regbench.sweep.objective import FAIL_REASON
from regbench.sweep.spec import GRID_POINT, StudySpec, hydra_value


def _point_key(spec: StudySpec, params: dict[str, Any]) -> tuple | None:
    if any(p.key not in params for p in spec.space):
        return None
    return tuple(f"{p.key}={hydra_value(params[p.key])}" for p in spec.space)


def _trial_point(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    return {**t.params, **t.user_attrs.get(GRID_POINT, {})}  # grid values as queued


def enqueue_missing(study: optuna.Study, spec: StudySpec, stale: Collection[int] = ()) -> int:
    """Queue every grid point without a COMPLETE, PRUNED, RUNNING or WAITING trial:
    completed points are not rerun, failed ones are retried, and so are those whose
    trial number is in ``stale`` (finished, but their runs are not in this MLflow store:
    :mod:`regbench.sweep.stores`)."""
    busy = {TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING}
    taken = {
        _point_key(spec, _trial_point(t))
        for t in study.get_trials(deepcopy=False)
        if t.state in busy and t.number not in stale
    }
    n = 0
    for point in spec.grid_points():
        if _point_key(spec, point) not in taken:
            study.enqueue_trial(point, user_attrs={GRID_POINT: point})
            n += 1
    return n


def grid_results(
    study: optuna.Study, spec: StudySpec, grid: dict[str, list], stale: Collection[int] = ()
) -> list[dict]:
    """The (point, seed) records of :func:`run_grid` from the study's trials, leaving out
    those numbered in ``stale`` (their runs are in another MLflow store)."""
    by_point: dict[tuple, optuna.trial.FrozenTrial] = {}
    for t in study.get_trials(deepcopy=False):  # prefer COMPLETE, then the latest trial
        if t.number in stale:
            continue
        key = _point_key(spec, _trial_point(t))
        old = by_point.get(key)
        if old is None or old.state != TrialState.COMPLETE:
            by_point[key] = t
    out = []
    combos = itertools.product(*grid.values())
    raw_points = [dict(zip(grid, combo, strict=True)) for combo in combos]
    for raw_point, point in zip(raw_points, spec.grid_points(), strict=True):
        t = by_point.get(_point_key(spec, point))
        for seed in spec.seeds:
            res = t.user_attrs.get("seed_results", {}).get(str(seed)) if t else None
            run_ids = t.user_attrs.get("mlflow_run_ids", {}) if t else {}
            state = (
                "COMPLETE"
                if res
                else (
                    "MISSING"
                    if t is None or t.state in (TrialState.WAITING, TrialState.RUNNING)
                    else t.state.name
                )
            )
            out.append(
                {
                    "point": raw_point,
                    "overrides": spec.point_overrides(point),
                    "seed": seed,
                    "metrics": {k: v for k, v in res.items() if k != "run_id"} if res else {},
                    "run_id": res["run_id"] if res else run_ids.get(str(seed)),
                    "state": state,
                    "trial": None if t is None else t.number,
                    "error": None if res or t is None else t.user_attrs.get(FAIL_REASON),
                }
            )
    return out

"""Grid trials trained as batched groups (:mod:`regbench.batched`).

A worker, holding the study's local lock, plans the WAITING grid points into groups (one
model per point and seed; :func:`regbench.batched.plan.make_groups`), claims the group
with the largest estimated cost (:func:`~regbench.batched.plan.group_cost`, so
parallel workers take the heavy groups first, as longest-processing-time scheduling),
marks its trials RUNNING, releases the lock and trains all their seeds as one program.
Each trial then ends COMPLETE or FAIL exactly as :class:`~regbench.sweep.objective.Objective`
would end it, with the same user attrs; heartbeats keep the claimed trials alive, so a
killed worker's trials are retried like any others.

On by default; ``REGBENCH_BATCHED=0`` trains one by one. Studies with a pruner (per-epoch
reports to Optuna) train one by one; other studies batch the seeds of each trial
(:meth:`~regbench.sweep.objective.Objective._run`).
"""

from __future__ import annotations

from contextlib import ExitStack

import optuna
from optuna.trial import TrialState

from regbench.sweep.objective import FAIL_REASON, Objective, WorkerContext
from regbench.sweep.spec import GRID_POINT


def enabled(ctx: WorkerContext) -> bool:
    """Grids of groups: on unless ``REGBENCH_BATCHED=0``; grids without a pruner only."""
    from regbench import batched

    return batched.enabled() and ctx.spec.is_grid and ctx.spec.pruner["kind"] == "none"


def _plan_members(study: optuna.Study, ctx: WorkerContext, objective: Objective):
    """One planning member per WAITING trial (model built, no data), seeds as copies."""
    from regbench.batched.plan import Member

    out = []
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    for t in sorted(waiting, key=lambda t: t.number):
        point = t.user_attrs.get(GRID_POINT, {})
        base = (
            *ctx.spec.overrides,
            *ctx.cli_overrides,
            *ctx.spec.point_overrides(point),
            f"experiment_name={ctx.experiment_name}",
            f"seed={ctx.spec.seeds[0]}",
        )
        if base not in _PLANNED:  # each claim plans every waiting point: compose once
            _PLANNED[base] = _plan_point(base)
        cfg, net = _PLANNED[base]
        out.append((t, Member(cfg, [], {}, net=net)))
    return out


_PLANNED: dict[tuple, tuple] = {}
_SHAPES: dict[str, tuple] = {}


def _plan_point(overrides: tuple) -> tuple:
    """(config, model built without data) of a grid point, or (None, None) if it fails
    to build: it then fails in its own trial, with the reason recorded there."""
    from regbench.config import compose
    from regbench.data import build_data
    from regbench.nn import build_model

    try:
        cfg = compose(list(overrides))
        key = str(cfg.data)
        if key not in _SHAPES:
            splits = build_data(cfg.data, cfg.seed)
            _SHAPES[key] = (splits.input_shape, splits.num_classes)
        return cfg, build_model(cfg.model, *_SHAPES[key])
    except Exception:
        return None, None


def _reason(member) -> str | None:
    from regbench.batched.plan import unbatchable

    try:
        return unbatchable(member)
    except Exception as e:  # a bad reg entry: its trial fails alone with the message
        return str(e)


def claim(study: optuna.Study, ctx: WorkerContext, objective: Objective) -> list[optuna.Trial]:
    """Under the lock: mark the trials of the heaviest waiting group RUNNING."""
    from regbench.batched.plan import group_cost, make_groups, work

    planned = _plan_members(study, ctx, objective)
    alone = [t for t, m in planned if m.cfg is None or _reason(m)]
    members = [m for t, m in planned if all(t.number != a.number for a in alone)]
    trial_of = {id(m): t for t, m in planned}
    n_seeds = len(ctx.spec.seeds)
    groups = [[t] for t in alone]
    for g in make_groups([m for m in members for _ in range(n_seeds)]):
        groups.append(list({trial_of[id(m)].number: trial_of[id(m)] for m in g}.values()))
    if not groups:
        return []

    def cost(trials) -> float:
        numbers = {t.number for t in trials}
        ms = [m for t, m in planned if t.number in numbers and m.net is not None]
        return group_cost(len(trials) * n_seeds, max((work(m) for m in ms), default=0))

    claimed = []
    for t in max(groups, key=cost):
        if study._storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
            claimed.append(optuna.Trial(study, t._trial_id))
    return claimed


def run_claimed(study: optuna.Study, trials: list[optuna.Trial], objective: Objective, report):
    """Train every seed of ``trials`` (batched where possible) and tell Optuna."""
    from optuna.storages._heartbeat import get_heartbeat_thread

    from regbench.batched.runs import run_members
    from regbench.config import compose_seeds

    ctx = objective.ctx
    with ExitStack() as stack:
        for t in trials:
            stack.enter_context(get_heartbeat_thread(t._trial_id, study._storage))
        jobs, states = [], {}
        for t in trials:
            try:
                label, base, results = objective.prepare(t)
                states[t.number] = results
                seeds = [s for s in ctx.spec.seeds if str(s) not in results]
                for seed, cfg in zip(seeds, compose_seeds(base, seeds), strict=True):
                    jobs.append((t, seed, cfg, label))
            except Exception as e:
                t.set_user_attr(FAIL_REASON, f"{type(e).__name__}: {e}"[:2000])
                states[t.number] = e
        outs = run_members(
            [j[2] for j in jobs],
            [j[3] for j in jobs],
            ctx.parent_run_id,
            [objective.tags(j[0], j[1]) for j in jobs],
        )
    for t in trials:
        _tell(study, t, objective, states[t.number], jobs, outs, report)


def _tell(study, trial, objective, results, jobs, outs, report) -> None:
    error = results if isinstance(results, Exception) else None
    run_ids = {} if error else {s: r["run_id"] for s, r in results.items()}
    for (t, seed, _, _), out in zip(jobs, outs, strict=True):
        if t is not trial or isinstance(results, Exception):
            continue
        if isinstance(out, Exception):  # the other seeds of the point still count
            if getattr(out, "run_id", None):
                run_ids[str(seed)] = out.run_id
            if error is None:
                error = out
                reason = f"seed {seed}: {type(out).__name__}: {out}"
                trial.set_user_attr(FAIL_REASON, reason[:2000])
        else:
            results[str(seed)] = out
            run_ids[str(seed)] = out["run_id"]
    if error is None:
        try:
            value = objective.value(trial, results)
        except Exception as e:
            error = e
    if not isinstance(results, Exception):
        trial.set_user_attr("seed_results", results)  # finished seeds, as Objective keeps
    trial.set_user_attr("mlflow_run_ids", run_ids)
    state = TrialState.COMPLETE if error is None else TrialState.FAIL
    report(study, study.tell(trial, value if error is None else None, state=state))

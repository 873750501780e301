"""MLflow side of a sweep: the study's parent run (found again on resume), cleanup of runs
left RUNNING by dead workers, the closing table, and Optuna's plots as artifacts."""

from __future__ import annotations

import sqlite3
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import optuna
from optuna.trial import TrialState

from regbench import tracking
from regbench.sweep.objective import FAIL_REASON, INTERRUPTED, ROLE_TAG, STUDY_TAG, TRIAL_TAG
from regbench.sweep.spec import StudySpec
from regbench.tracking import lineage

T = TypeVar("T")


def retry_locked(fn: Callable[[], T], tries: int = 8) -> T:
    """Call ``fn``, retrying while SQLite says the database is locked (concurrent writers)."""
    for i in range(tries):
        try:
            return fn()
        except Exception as e:  # MlflowException / OperationalError wrap the sqlite error
            if "locked" not in str(e).lower() or i == tries - 1:
                raise
            time.sleep(0.5 * 2**i)
    raise AssertionError("unreachable")


def use_wal(url: str) -> None:
    """Write-ahead logging lets readers and one writer work at once: far fewer
    'database is locked' errors with several worker processes (local disks only)."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if path.exists():
            with sqlite3.connect(path, timeout=60) as con:
                con.execute("PRAGMA journal_mode=WAL")


def parent_run(client, exp_id: str, spec: StudySpec, study_name: str, kind: str) -> str:
    """The study's parent run: the existing one (set RUNNING again) or a new one."""
    found = client.search_runs(
        [exp_id],
        f"tags.`{STUDY_TAG}` = '{study_name}' and tags.`{ROLE_TAG}` = 'parent'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if found:
        run_id = found[0].info.run_id
        retry_locked(lambda: client.update_run(run_id, status="RUNNING"))
        return run_id
    tags = {
        STUDY_TAG: study_name,
        ROLE_TAG: "parent",
        "sweep.kind": kind,
        tracking.NOTE_TAG: (
            f"Optuna study `{study_name}` ({kind}, objective {spec.direction} {spec.metric} "
            f"over seeds {list(spec.seeds)}): one child run per trial and seed. "
            f"Seed-averaged table and figures: `regbench compare {study_name}`. "
            + tracking.GROUP_HINT
        ),
        **lineage.environment_tags(),
    }
    run = retry_locked(lambda: client.create_run(exp_id, run_name=study_name, tags=tags))
    run_id = run.info.run_id
    params = {
        "objective.metric": spec.metric,
        "objective.direction": spec.direction,
        "seeds": str(spec.seeds),
        "aggregate": spec.aggregate,
        "sampler": str(spec.sampler),
        "pruner": str(spec.pruner),
        "overrides": " ".join(spec.overrides)[:6000],
    }
    tracking.log_params(client, run_id, params)
    tracking.TrackedRun(client, run_id).log_text(spec.text or _spec_yaml(spec), "spec.yaml")
    return run_id


def _spec_yaml(spec: StudySpec) -> str:
    import yaml

    space = {
        p.key: list(p.choices)
        if p.kind == "categorical"
        else {"type": p.kind, "low": p.low, "high": p.high, "log": p.log}
        for p in spec.space
    }
    return yaml.safe_dump(
        {
            "name": spec.name,
            "overrides": spec.overrides,
            "objective": {"metric": spec.metric, "direction": spec.direction},
            "seeds": spec.seeds,
            "sampler": spec.sampler,
            "space": space,
        },
        sort_keys=False,
    )


def kill_orphans(client, exp_id: str, parent_id: str, study: optuna.Study) -> int:
    """Mark KILLED the child runs left RUNNING by a dead worker: those whose trial is no
    longer RUNNING in Optuna (a live worker's runs, on any machine, are left alone)."""
    running = client.search_runs(
        [exp_id],
        f"tags.`mlflow.parentRunId` = '{parent_id}' and attributes.status = 'RUNNING'",
        max_results=10000,
    )
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    n = 0
    for r in running:
        number = r.data.tags.get(TRIAL_TAG)
        if number is None or states.get(int(number)) == TrialState.RUNNING:
            continue
        note = f"worker died; trial {number} was failed by its heartbeat and retried"
        retry_locked(lambda r=r, note=note: client.set_tag(r.info.run_id, tracking.ERROR_TAG, note))
        retry_locked(lambda r=r: client.set_terminated(r.info.run_id, "KILLED"))
        n += 1
    return n


def shown_key(key: str) -> str:
    """A space key as a person reads it: ``+experiment/vs_placement`` (a Hydra group
    override) -> ``vs_placement``; ``model.width`` stays."""
    return key.lstrip("+~").rsplit("/", 1)[-1]


def trial_table(study: optuna.Study, spec: StudySpec) -> str:
    """One line per trial, then the best one."""
    trials = study.get_trials(deepcopy=False)
    keys = [p.key for p in spec.space]
    width = {k: max(len(shown_key(k)), 10) for k in keys}
    head = f"{'trial':>5}  {'state':<8}  {spec.metric:>10}  {'seconds':>7}  " + "  ".join(
        f"{shown_key(k):<{width[k]}}" for k in keys
    )
    lines = [head, "-" * len(head)]
    for t in trials:
        value = f"{t.value:10.4f}" if t.value is not None else f"{'-':>10}"
        secs = f"{t.duration.total_seconds():7.1f}" if t.duration else f"{'-':>7}"
        cells = "  ".join(f"{_short(t.params.get(k, '')):<{width[k]}}" for k in keys)
        note = (
            f"  {t.user_attrs.get(FAIL_REASON, _no_reason(t))[:80]}"
            if (t.state == TrialState.FAIL)
            else ""
        )
        lines.append(f"{t.number:>5}  {t.state.name:<8}  {value}  {secs}  {cells}{note}")
    counts = {s.name: sum(t.state == s for t in trials) for s in TrialState}
    lines.append("-" * len(head))
    lines.append("  ".join(f"{k}={v}" for k, v in counts.items() if v))
    best = best_trial(study)
    if best is not None:
        lines.append(
            f"best: trial {best.number} {spec.metric}={best.value:.4f} "
            f"({spec.aggregate} over seeds {spec.seeds}) "
            + " ".join(f"{shown_key(k)}={_short(v)}" for k, v in best.params.items())
        )
    return "\n".join(lines)


def _no_reason(t: optuna.trial.FrozenTrial) -> str:
    return "interrupted (Ctrl-C)" if t.user_attrs.get(INTERRUPTED) else "worker died"


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:  # no COMPLETE trial yet
        return None


def log_plots(client, run_id: str, study: optuna.Study) -> list[str]:
    """Optuna's matplotlib plots as PNG artifacts of the parent run (under ``plots/``)."""
    import matplotlib

    matplotlib.use("Agg")  # no display; safe in worker processes and CI
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    plots = {"optimization_history": ovm.plot_optimization_history, "slice": ovm.plot_slice}
    if (
        len(complete) >= 2
        and len({tuple(sorted(map(str, t.params.items()))) for t in complete}) >= 2
    ):
        plots["param_importances"] = ovm.plot_param_importances
    logged = []
    # Optuna's plot functions call plt.style.use("ggplot"); rc_context restores the style
    # afterwards, or every later figure of the process (a reproduction's report after its
    # grid) would be drawn in ggplot and differ from the same report rebuilt later
    with tempfile.TemporaryDirectory() as d, warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore")
        for name, fn in plots.items():
            try:
                ax = fn(study)
                fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
                if name == "slice":  # one panel per parameter, side by side
                    n_params = len(complete[0].params) if complete else 1
                    fig.set_size_inches(max(6.4, 3.2 * n_params), 4.8)
                path = Path(d) / f"{name}.png"
                fig.savefig(path, dpi=100, bbox_inches="tight")
                plt.close(fig)
                retry_locked(lambda p=path: client.log_artifact(run_id, str(p), "plots"))
                logged.append(f"plots/{name}.png")
            except Exception as e:  # a plot that cannot be drawn must not fail the sweep
                print(f"note: plot {name} skipped: {type(e).__name__}: {e}")
    return logged


def finish_parent(
    client, run_id: str, study: optuna.Study, spec: StudySpec, status: str = "FINISHED"
) -> None:
    trials = study.get_trials(deepcopy=False)
    metrics = {
        f"trials/{s.name.lower()}": float(sum(t.state == s for t in trials))
        for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    }
    best = best_trial(study)
    if best is not None:
        metrics[f"best/{spec.metric}"] = float(best.value)
        retry_locked(lambda: client.set_tag(run_id, "sweep.best_trial", str(best.number)))
    tracked = tracking.TrackedRun(client, run_id)
    retry_locked(lambda: tracked.log_metrics(metrics, step=len(trials)))
    retry_locked(lambda: client.set_terminated(run_id, status))

"""Optuna studies and grids over Hydra configs, tracked in MLflow, resumable and parallel.

``regbench sweep sweeps/NAME.yaml [--n-jobs N] [--n-trials N] [--timeout S]
[--storage URL] [--study NAME] [overrides...]`` runs the study file (see
:mod:`regbench.sweep.spec`); :func:`run_grid` runs a grid from Python (reproductions).

Layout: the parent process validates the study, creates the Optuna study and the MLflow
parent run (both SQLite databases are initialised here, before any worker touches them),
enqueues the missing points of a grid, then runs worker 0 itself and ``N - 1`` spawned
workers (:mod:`regbench.sweep.worker`, started and joined by :mod:`regbench.sweep.pool`),
each with ``cores // N`` torch threads. At the end it marks runs of dead workers KILLED,
prints the trial table and logs Optuna's plots.

Storage: ``sqlite:///<repo>/mlruns/optuna.db`` by default. Rerunning the same command
resumes the study. For several machines, give every machine the same command with
``--storage postgresql://user:pass@host/db`` (and ``MLFLOW_TRACKING_URI`` pointing at a
shared MLflow server or database).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from regbench.errors import ConfigError, positive_int
from regbench.paths import mlruns_dir
from regbench.sweep.spec import StudySpec, hydra_value, load_spec, parse_spec

if TYPE_CHECKING:  # the heavy imports (Optuna, MLflow, Lightning) wait for a real run
    import optuna

    from regbench.sweep.worker import WorkerContext

FINGERPRINT_ATTR = "regbench.fingerprint"


def default_storage() -> str:
    mlruns_dir().mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{mlruns_dir() / 'optuna.db'}"


def _experiment(spec: StudySpec, study_name: str, cli_overrides: list[str]) -> str:
    """CLI ``experiment_name=`` > the study file's > the base config's (unless it is the
    default, ``train``) > the study name. Children and the parent run must share one
    experiment."""
    from regbench.config import DEFAULT_EXPERIMENT
    from regbench.validate import check_job

    shapes: dict = {}  # the data sets' shapes, loaded once for every check below
    cfg = _compose_or_raise("overrides", [*spec.overrides, *cli_overrides])
    check_job(cfg, shapes)  # what a trial builds: bad values fail before the study or a run
    for p in spec.space:  # every choice (or bound) must compose: catches typos before trials
        for v in p.examples():
            where = f"space.{p.key}={hydra_value(v)}"
            point = _compose_or_raise(where, [*spec.overrides, *cli_overrides, *p.overrides(v)])
            try:
                check_job(point, shapes)  # each value once (not the product)
            except ConfigError as e:
                raise ConfigError(f"{where}: {e}") from None
    if any(o.startswith("experiment_name=") for o in cli_overrides) or not spec.experiment_name:
        named = cfg.experiment_name != DEFAULT_EXPERIMENT
        return str(cfg.experiment_name) if named else study_name
    return spec.experiment_name


def _compose_or_raise(where: str, overrides: list[str]):
    from regbench.validate import compose_checked

    try:
        return compose_checked(overrides)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def run_study(
    spec: StudySpec,
    *,
    n_jobs: int = 1,
    n_trials: int | None = None,
    timeout: float | None = None,
    storage: str | None = None,
    cli_overrides: list[str] | tuple[str, ...] = (),
    study_name: str | None = None,
    verbose: bool = True,
) -> optuna.Study:
    """Run (or resume) a study to its budget; returns the Optuna study."""
    from regbench.sweep.worker import WorkerContext, make_pruner, make_sampler, quiet_libraries

    _check_arguments(spec, n_jobs, n_trials, timeout, storage)
    name, cli = study_name or spec.name, list(cli_overrides)
    experiment = _experiment(spec, name, cli)
    make_sampler(spec, 0)  # bad sampler or pruner arguments fail here, before any run
    make_pruner(spec)
    quiet_libraries()
    url = storage or default_storage()
    study, client, exp_id, parent, queued = _open_study(spec, name, url, experiment, cli)
    if verbose:
        _announce(spec, name, url, n_jobs, n_trials, queued)
    ctx = WorkerContext(
        spec=spec,
        study_name=name,
        storage_url=url,
        experiment_name=experiment,
        parent_run_id=parent,
        n_trials=n_trials or spec.n_trials,
        timeout=timeout or spec.timeout,
        n_jobs=n_jobs,
        cli_overrides=cli,
        verbose=verbose,
    )
    _work_and_close(ctx, study, client, exp_id)
    return study


def _check_arguments(
    spec: StudySpec, n_jobs: int, n_trials: int | None, timeout: float | None, storage: str | None
) -> None:
    """The command-line arguments, checked before anything is composed, created or run."""
    positive_int("--n-jobs", n_jobs)
    if timeout is not None and not timeout > 0:
        raise ConfigError(f"--timeout={timeout!r} is not valid; it must be a number of seconds > 0")
    if storage is not None:
        from regbench.sweep.worker import check_storage_url

        check_storage_url(storage)
    if n_trials is not None:
        positive_int("--n-trials", n_trials)
        if spec.is_grid:
            raise ConfigError("--n-trials does not apply to a grid: it runs every point")


def _count(n: int, noun: str) -> str:
    """``1 point``, ``3 points``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _announce(
    spec: StudySpec, name: str, url: str, n_jobs: int, n_trials: int | None, queued: int
) -> None:
    """One line on what is about to run: a grid's points still to run, a study's budget."""
    seeds = _count(len(spec.seeds), "seed")
    if spec.is_grid:
        line = f"grid {name}: {_count(spec.n_trials, 'point')} x {seeds}, {queued} to run"
    else:
        trials = _count(n_trials or spec.n_trials, "trial")
        line = f"study {name}: {trials} x {seeds}, {_count(n_jobs, 'worker')}; storage {url}"
    print(line, flush=True)


def _open_study(spec: StudySpec, name: str, url: str, experiment: str, cli: list[str]):
    """:func:`_create_or_find` under the study lock: one worker (on any machine) at a time
    sets up the tables, the study and the parent run."""
    from regbench.sweep.worker import study_lock

    lock = study_lock(url, name)
    lock.acquire()
    try:
        return _create_or_find(spec, name, url, experiment, cli)
    finally:
        lock.release()


def _create_or_find(spec: StudySpec, name: str, url: str, experiment: str, cli: list[str]):
    """The Optuna study and its MLflow parent run, created or found again; grid points
    enqueued. Called under the study lock, so concurrent workers share one of each."""
    import optuna

    from regbench import tracking
    from regbench.sweep.grid import enqueue_missing
    from regbench.sweep.stores import check_agreement
    from regbench.sweep.tracking import kill_orphans, parent_run, use_wal
    from regbench.sweep.worker import open_storage

    study = optuna.create_study(
        study_name=name,
        storage=open_storage(spec, url),
        direction=spec.direction,
        load_if_exists=True,
    )
    use_wal(url)
    fingerprint = spec.fingerprint(cli)
    if study.user_attrs.get(FINGERPRINT_ATTR, fingerprint) != fingerprint:
        raise ConfigError(
            f"study {name!r} in {url} was run with other overrides, objective, seeds or space; "
            "rerun it with the same study file and overrides, or start a new one with "
            "--study NEW_NAME"
        )
    study.set_user_attr(FINGERPRINT_ATTR, fingerprint)
    client = tracking.get_client()
    # the study's finished trials must have their runs in this MLflow store (sweep.stores)
    stale, notes = check_agreement(study, name, spec.is_grid, url, client, experiment)
    exp_id = tracking.ensure_experiment(client, experiment)
    use_wal(tracking.tracking_uri())
    parent = parent_run(client, exp_id, spec, name, "grid" if spec.is_grid else "optuna")
    kill_orphans(client, exp_id, parent, study)
    queued = enqueue_missing(study, spec, stale) if spec.is_grid else 0
    for note in notes:
        print(f"note: {note}", flush=True)
    return study, client, exp_id, parent, queued


def _work_and_close(ctx: WorkerContext, study: optuna.Study, client, exp_id: str) -> None:
    """Run the workers, then close the parent run: KILLED (and re-raised) if they were
    interrupted, else with the trial table and Optuna's plots."""
    from regbench.sweep.pool import run_workers
    from regbench.sweep.tracking import finish_parent, kill_orphans, log_plots, trial_table

    spec, parent = ctx.spec, ctx.parent_run_id
    try:
        run_workers(ctx)
    except BaseException:
        kill_orphans(client, exp_id, parent, study)
        finish_parent(client, parent, study, spec, status="KILLED")
        raise
    kill_orphans(client, exp_id, parent, study)
    if ctx.verbose:
        print("\n" + trial_table(study, spec), flush=True)
    log_plots(client, parent, study)
    finish_parent(client, parent, study, spec)
    if ctx.verbose:
        print(
            f"\nMLflow: experiment '{ctx.experiment_name}', parent run {parent}; "
            f"Optuna: study '{ctx.study_name}' in {ctx.storage_url}",
            flush=True,
        )


def run_grid(
    name: str,
    base_overrides: list[str],
    grid: dict[str, list],
    seeds: list[int],
    n_jobs: int = 1,
    experiment_name: str | None = None,
    storage: str | None = None,
    *,
    objective: str = "val/acc",
    verbose: bool = True,
) -> list[dict]:
    """Train every grid point x seed; resumable and parallel. Returns one dict per
    (point, seed), in grid order (``itertools.product`` over ``grid`` in its key order,
    seeds innermost)::

        {"point": {"model.width": 16}, "overrides": ["model.width=16"], "seed": 0,
         "metrics": {"test/acc": ..., "val/acc": ..., ...},  # everything train.run returns
         "run_id": "<MLflow run id>", "state": "COMPLETE", "error": None, "trial": 3}

    - ``name`` is the Optuna study name and the MLflow parent run's name; calling again
      with the same name resumes: points already COMPLETE are not rerun, failed ones are.
      Adding values to ``grid`` later runs only the new points.
    - ``base_overrides`` apply to every run (e.g. ``["experiment=variance_shift"]``);
      grid values may be scalars or lists (``model.block``: ``["linear", "norm", "act"]``).
    - ``state`` is ``COMPLETE`` (metrics present), ``FAIL`` (``error`` says why, e.g. a
      non-finite loss; ``metrics`` is empty) or ``MISSING`` (not run, e.g. the worker was
      interrupted). A point's seeds run in one trial, in order; a failing seed stops the
      later seeds of that point (they come back ``FAIL`` with the same error).
    - ``n_jobs`` worker processes, each with ``cores // n_jobs`` torch threads.
    - MLflow: one parent run (tags ``sweep.study=name``, ``sweep.role=parent``) in
      ``experiment_name`` (default: the base config's experiment_name unless ``train``,
      else ``name``); one child run per point and seed (tags ``sweep.study``,
      ``sweep.trial``, ``sweep.seed``).
    - ``storage``: Optuna storage URL, default ``sqlite:///<mlruns>/optuna.db``.
    - ``objective``: the metric each trial reports to Optuna (maximized); it must be
      logged by every run (``val/acc`` does not exist when ``data.val_fraction=0``).
    """
    raw = {
        "name": name,
        "overrides": list(base_overrides),
        "seeds": list(seeds),
        "objective": {"metric": objective, "direction": "maximize"},
        "sampler": "grid",
        "space": {k: {"type": "categorical", "choices": list(v)} for k, v in grid.items()},
    }
    if experiment_name:
        raw["experiment_name"] = experiment_name
    from regbench.sweep.grid import grid_results
    from regbench.sweep.stores import trials_without_runs

    spec = parse_spec(raw, name)
    study = run_study(spec, n_jobs=n_jobs, storage=storage, verbose=verbose)
    # results from this MLflow store's runs only: trials of another store are left out
    stale = {t.number for t in trials_without_runs(study, name, experiment=experiment_name)}
    return grid_results(study, spec, grid, stale)


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(
        prog="regbench sweep",
        description=(
            "Run or resume an Optuna study (or a grid) from a study file in sweeps/.\n\n"
            "Each trial trains every seed of its point; the study is one MLflow parent run\n"
            "with a child run per trial and seed. Rerunning the same command resumes it."
        ),
        epilog=(
            "examples:\n"
            "  regbench sweep sweeps/mlp_tpe.yaml --n-jobs 2\n"
            "  regbench sweep sweeps/dropout_placement_grid.yaml\n"
            "  regbench sweep sweeps/mlp_tpe.yaml --study quick trainer.max_epochs=5\n"
            "  # several machines, the same command on each:\n"
            "  regbench sweep sweeps/mlp_tpe.yaml --storage "
            "postgresql+psycopg2://user:pass@host/db\n\n"
            "Study file format and options: docs/SWEEPS.md"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("spec", help="study file, e.g. sweeps/mlp_tpe.yaml")
    p.add_argument("overrides", nargs="*", help="Hydra overrides applied to every trial")
    p.add_argument("--n-jobs", type=int, default=1, help="worker processes (default: 1)")
    p.add_argument("--n-trials", type=int, help="total trials (default: the study file's)")
    p.add_argument(
        "--timeout",
        type=float,
        help="seconds before workers stop starting trials (default: the study file's, or none)",
    )
    p.add_argument(
        "--storage",
        help="Optuna storage URL (default: sqlite:///<mlruns>/optuna.db; several machines: "
        "postgresql+psycopg2://user:pass@host/db, pip install 'regbench[postgres]')",
    )
    p.add_argument("--study", help="study name (default: the file's name, else its stem)")
    args = p.parse_intermixed_args(argv)
    try:
        spec = load_spec(args.spec)
        run_study(
            spec,
            n_jobs=args.n_jobs,
            n_trials=args.n_trials,
            timeout=args.timeout,
            storage=args.storage,
            cli_overrides=args.overrides,
            study_name=args.study,
        )
    except ConfigError as e:
        print(f"regbench sweep: {e}", file=sys.stderr)
        raise SystemExit(2) from None

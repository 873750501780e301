"""Sweep workers: the trial objective, the pruning callback, and the loop each worker
process runs against the shared Optuna storage.

Every worker decides, under a machine-local file lock, whether the study still needs a
trial, and asks Optuna for one before releasing the lock, so N local workers never start
more than ``n_trials`` trials between them. Trials whose worker died (no heartbeat for
``grace_period`` s) are failed by Optuna and re-queued as WAITING copies
(``RetryHeartbeatStaleTrialCallback``); seeds a dead trial already finished are reused.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import math
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import pytorch_lightning as pl
from optuna.trial import TrialState

from regbench.multirun import thread_budget
from regbench.sweep_spec import GRID_POINT, StudySpec

STUDY_TAG, TRIAL_TAG, SEED_TAG, ROLE_TAG = "sweep.study", "sweep.trial", "sweep.seed", "sweep.role"
FAIL_REASON = "fail_reason"  # Optuna user attr of a trial that failed (not of a dead worker's)
POLL_S = 2.0


@dataclass
class WorkerContext:
    """Everything a worker process needs; plain data so that it pickles for ``spawn``."""

    spec: StudySpec
    study_name: str
    storage_url: str
    experiment_name: str
    parent_run_id: str
    n_trials: int | None
    timeout: float | None = None
    n_jobs: int = 1
    cli_overrides: list[str] = field(default_factory=list)
    t_start: float = field(default_factory=time.time)
    parent_pid: int | None = None  # a spawned worker stops when its parent is gone
    verbose: bool = True


def limit_threads(n_jobs: int) -> int:
    """Give each of ``n_jobs`` workers ``cores // n_jobs`` torch threads (an explicit
    ``OMP_NUM_THREADS`` caps it), so parallel workers never oversubscribe the machine."""
    import torch

    n = thread_budget(n_jobs)
    torch.set_num_threads(n)
    return n


def open_storage(spec: StudySpec, url: str) -> optuna.storages.RDBStorage:
    """RDB storage with heartbeats; SQLite waits up to 60 s on a locked database."""
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {
        "pool_pre_ping": True}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url, engine_kwargs=kwargs, heartbeat_interval=spec.heartbeat_interval,
            grace_period=spec.grace_period,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=3),
        )


class LocalLock:
    """An exclusive ``flock`` shared by the workers of one study on this machine."""

    def __init__(self, key: str) -> None:
        digest = hashlib.sha1(key.encode()).hexdigest()[:16]
        self.path = Path(tempfile.gettempdir()) / f"regbench-sweep-{digest}.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self._fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o666)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:  # idempotent: the objective releases it early
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class PruningCallback(pl.Callback):
    """Reports the monitored metric to Optuna after every validation epoch and raises
    ``TrialPruned`` when the pruner says so. Seed ``i`` reports at steps
    ``i * max_epochs + epoch`` so that all seeds of a trial share one curve."""

    def __init__(self, trial: optuna.Trial, monitor: str, step_offset: int, prune: bool) -> None:
        self.trial, self.monitor, self.step_offset, self.prune = trial, monitor, step_offset, prune
        self.run_id: str | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.run_id = getattr(trainer.logger, "version", None)  # the MLflow run id

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Here (not in on_validation_epoch_end) the module's epoch metrics are already
        # in callback_metrics: Lightning calls callbacks before the module in that hook.
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or value is None or not math.isfinite(float(value)):
            return
        epoch = trainer.current_epoch
        self.trial.report(float(value), self.step_offset + epoch)
        if self.prune and self.trial.should_prune():
            raise optuna.TrialPruned(f"{self.monitor}={float(value):.4g} at epoch {epoch}")


class Objective:
    """Trains one trial's config once per seed; returns the aggregate of the metric."""

    def __init__(self, ctx: WorkerContext, lock: LocalLock) -> None:
        self.ctx, self.lock = ctx, lock
        spec = ctx.spec
        self.monitor = spec.pruner.get("monitor") or spec.metric.replace("test/", "val/")
        self.prune = spec.pruner["kind"] != "none"

    def __call__(self, trial: optuna.Trial) -> float:
        self.lock.release()  # the trial exists (RUNNING) now: other workers may decide
        try:
            return self._run(trial)
        except optuna.TrialPruned:
            raise
        except Exception as e:  # e.g. a composition error: the reason must be recorded
            if FAIL_REASON not in trial.user_attrs:
                trial.set_user_attr(FAIL_REASON, f"{type(e).__name__}: {e}"[:2000])
            raise

    def _run(self, trial: optuna.Trial) -> float:
        from regbench.config import compose
        from regbench.train import run

        spec, ctx = self.ctx.spec, self.ctx
        fixed = trial.user_attrs.get(GRID_POINT, {})  # a grid point, exactly as queued
        params = {p.key: fixed.get(p.key, p.suggest(trial, spec.is_grid)) for p in spec.space}
        label = [f"{k}={v}" for k, v in params.items()]  # run names show the varied axes
        base = ["trainer.progress_bar=false", *spec.overrides, *ctx.cli_overrides,
                *spec.point_overrides(params), f"experiment_name={ctx.experiment_name}"]
        # A retry of a dead worker's trial inherits its user attrs: reuse finished seeds.
        results: dict = {s: r for s, r in trial.user_attrs.get("seed_results", {}).items()
                         if int(s) in spec.seeds}
        run_ids = {s: r["run_id"] for s, r in results.items()}
        trial.set_user_attr("overrides", spec.point_overrides(params))
        for i, seed in enumerate(spec.seeds):
            if str(seed) in results:
                continue
            cfg = compose([*base, f"seed={seed}"])
            cb = PruningCallback(trial, self.monitor, i * int(cfg.trainer.max_epochs), self.prune)
            tags = {STUDY_TAG: ctx.study_name, TRIAL_TAG: trial.number, SEED_TAG: seed}
            try:
                metrics = run(cfg, label, parent_run_id=ctx.parent_run_id, callbacks=[cb],
                              tags=tags)
            except optuna.TrialPruned:
                self._pruned_run(cb.run_id)
                raise
            except Exception as e:
                trial.set_user_attr(FAIL_REASON, f"seed {seed}: {type(e).__name__}: {e}"[:2000])
                raise
            finally:
                if cb.run_id:
                    run_ids[str(seed)] = cb.run_id
                trial.set_user_attr("mlflow_run_ids", run_ids)
            results[str(seed)] = metrics
            trial.set_user_attr("seed_results", results)
        missing = [s for s, r in results.items() if spec.metric not in r]
        if missing:
            have = sorted(k for k in results[missing[0]] if "/" in k)
            reason = f"objective.metric={spec.metric!r} not in the results; have: {have}"
            trial.set_user_attr(FAIL_REASON, reason)
            raise KeyError(reason)
        value = spec.aggregate_values([results[str(s)][spec.metric] for s in spec.seeds])
        if not math.isfinite(value):
            trial.set_user_attr(FAIL_REASON, f"{spec.metric} is {value}")
            raise FloatingPointError(f"{spec.metric} is {value}")
        return value

    @staticmethod
    def _pruned_run(run_id: str | None) -> None:
        if run_id:  # tracked_run marked it FAILED; a pruned run was stopped on purpose
            from regbench.tracking import get_client

            client = get_client()
            client.set_tag(run_id, "sweep.pruned", "true")
            client.set_terminated(run_id, "KILLED")


def count_states(study: optuna.Study) -> dict[str, int]:
    """Trial counts; a FAIL without a reason is a dead worker's trial (retried, not counted)."""
    out = {"done": 0, "RUNNING": 0, "WAITING": 0}
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
                t.state == TrialState.FAIL and FAIL_REASON in t.user_attrs):
            out["done"] += 1
        elif t.state.name in out:
            out[t.state.name] += 1
    return out


def decide(study: optuna.Study, ctx: WorkerContext) -> str:
    """``run`` a trial, ``wait`` (others are running; one may turn out dead) or ``stop``."""
    c = count_states(study)
    if ctx.spec.is_grid:  # the parent enqueued every missing grid point
        return "run" if c["WAITING"] else ("wait" if c["RUNNING"] else "stop")
    if ctx.n_trials is None:
        return "run"  # timeout only
    if c["done"] >= ctx.n_trials:
        return "stop"
    if c["WAITING"] or c["done"] + c["RUNNING"] < ctx.n_trials:
        return "run"
    return "wait"


def make_sampler(spec: StudySpec, salt: int) -> optuna.samplers.BaseSampler:
    kw = {k: v for k, v in spec.sampler.items() if k != "kind"}
    # Workers (and reruns) must not replay one random sequence: salt the seed.
    if kw.get("seed") is not None:
        kw["seed"] = int(kw["seed"]) + 7919 * salt
    kind = spec.sampler["kind"]
    if kind == "tpe":
        kw.setdefault("constant_liar", True)  # parallel workers avoid each other's points
        cls = optuna.samplers.TPESampler
    else:  # random; a grid's points are all enqueued, so its sampler is never asked
        cls = optuna.samplers.RandomSampler
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return cls(**kw)
        except TypeError as e:
            raise ValueError(f"sampler: {e}") from None


def make_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    kw = {k: v for k, v in spec.pruner.items() if k not in ("kind", "monitor")}
    cls = {"median": optuna.pruners.MedianPruner, "hyperband": optuna.pruners.HyperbandPruner,
           "none": optuna.pruners.NopPruner}[spec.pruner["kind"]]
    try:
        return cls(**kw)
    except TypeError as e:
        raise ValueError(f"pruner: {e}") from None


def progress_line(trial: optuna.trial.FrozenTrial, worker: int) -> str:
    secs = trial.duration.total_seconds() if trial.duration else float("nan")
    value = "" if trial.value is None else f" value={trial.value:.4f}"
    params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                      for k, v in trial.params.items())
    reason = trial.user_attrs.get(FAIL_REASON, "") if trial.state == TrialState.FAIL else ""
    reason = f" ({reason[:200]})" if reason else ""
    return (f"[w{worker}] trial {trial.number:>3} {trial.state.name:<8}{value}{reason} "
            f"{secs:.1f}s {params}")


def quiet_libraries() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # progress_line reports each trial
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="pytorch_lightning")
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def work(ctx: WorkerContext, index: int = 0, ready=None) -> None:
    """The worker loop: run trials until the study has what it needs."""
    import torch

    quiet_libraries()
    threads = torch.get_num_threads()
    limit_threads(ctx.n_jobs)
    try:
        _loop(ctx, index, ready)
    finally:
        torch.set_num_threads(threads)  # the in-process worker is the caller's process


def _loop(ctx: WorkerContext, index: int, ready) -> None:
    storage = open_storage(ctx.spec, ctx.storage_url)
    n_before = len(storage.get_all_trials(storage.get_study_id_from_name(ctx.study_name)))
    study = optuna.load_study(study_name=ctx.study_name, storage=storage,
                              sampler=make_sampler(ctx.spec, index + 101 * n_before),
                              pruner=make_pruner(ctx.spec))
    lock = LocalLock(f"{ctx.storage_url}|{ctx.study_name}")
    objective = Objective(ctx, lock)
    if ready is not None:
        ready.set()  # imports done: the parent starts its own trials now

    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if ctx.verbose:
            print(progress_line(trial, index), flush=True)

    while True:
        if ctx.parent_pid is not None and os.getppid() != ctx.parent_pid:
            return  # orphaned: the parent was killed
        if ctx.timeout and time.time() - ctx.t_start >= ctx.timeout:
            return
        lock.acquire()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            action = decide(study, ctx)
            if action == "run":  # the objective releases the lock once the trial exists
                study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=[report],
                               gc_after_trial=True)
        finally:
            lock.release()
        if action == "stop":
            return
        if action == "wait":
            time.sleep(POLL_S)


def spawned_worker(ctx: WorkerContext, index: int, ready) -> None:
    """Entry point of a worker process (``multiprocessing`` spawn context)."""
    work(ctx, index, ready)

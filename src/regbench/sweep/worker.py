"""Sweep workers: the loop each worker process runs against the shared Optuna storage.

Every worker decides, under the study's lock, whether the study still needs a trial, and
asks Optuna for one before releasing the lock, so the workers never start more than
``n_trials`` trials between them (finished + RUNNING + WAITING are counted). On PostgreSQL
the lock is a session advisory lock on the server, shared by every machine and released by
the server if its holder dies; on SQLite (one machine) it is a file lock. Without a shared
lock each machine would only see the others' trials once created, and M machines could
overshoot by up to M - 1 trials. Trials whose worker died (no heartbeat for
``grace_period`` s) are failed by Optuna and re-queued as WAITING copies
(``RetryHeartbeatStaleTrialCallback``); seeds a dead trial already finished are reused.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState

from regbench import runtime, tracking
from regbench.errors import ConfigError
from regbench.sweep.batch import claim, enabled, run_claimed
from regbench.sweep.multirun import thread_budget
from regbench.sweep.objective import FAIL_REASON, Objective, WorkerContext
from regbench.sweep.spec import StudySpec
from regbench.sweep.tracking import shown_key

POLL_S = 2.0  # seconds between checks while other workers finish (or turn out dead)


def limit_threads(n_jobs: int) -> int:
    """Give each of ``n_jobs`` workers ``cores // n_jobs`` torch threads (an explicit
    ``OMP_NUM_THREADS`` caps it), so parallel workers never oversubscribe the machine."""
    import torch

    n = thread_budget(n_jobs)
    torch.set_num_threads(n)
    return n


def open_storage(spec: StudySpec, url: str) -> optuna.storages.RDBStorage:
    """RDB storage with heartbeats; SQLite waits up to 60 s on a locked database."""
    tracking.install_sqlite_pragmas()  # WAL, as for the MLflow store
    kwargs = (
        {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=kwargs,
            heartbeat_interval=spec.heartbeat_interval,
            grace_period=spec.grace_period,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=3
            ),
        )


def check_storage_url(url: str) -> None:
    """``--storage`` must name a database SQLAlchemy can open with an installed driver."""
    from sqlalchemy.engine import make_url

    try:
        make_url(url).get_dialect().import_dbapi()
    except Exception as e:
        hint = (
            "; for PostgreSQL: pip install 'regbench[postgres]' and postgresql+psycopg2://..."
            if url.startswith("postgres")
            else ""
        )
        raise ConfigError(
            f"--storage={url!r} is not a database URL Optuna can open ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}); e.g. sqlite:///path/optuna.db or "
            f"postgresql+psycopg2://user:pass@host/db{hint}"
        ) from None


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


class AdvisoryLock:
    """A PostgreSQL session advisory lock, the same for every machine on the database;
    the server drops it when the holder's connection dies (a SIGKILLed worker)."""

    def __init__(self, url: str, key: str) -> None:
        import sqlalchemy

        self.key = int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "big", signed=True)
        self._engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        self._conn = None
        self._held = False

    def acquire(self) -> None:
        from sqlalchemy import text

        if self._conn is None:
            self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self._conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": self.key})
        self._held = True

    def release(self) -> None:  # idempotent, like LocalLock.release
        from sqlalchemy import text

        if self._held:
            self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            self._held = False


def study_lock(storage_url: str, study_name: str) -> LocalLock | AdvisoryLock:
    """The lock the workers of one study share: across machines on PostgreSQL."""
    if storage_url.startswith("postgresql"):
        return AdvisoryLock(storage_url, f"regbench-sweep|{study_name}")
    return LocalLock(f"{storage_url}|{study_name}")


def count_states(study: optuna.Study) -> dict[str, int]:
    """Trial counts; a FAIL without a reason is a dead worker's trial (retried, not counted)."""
    out = {"done": 0, "RUNNING": 0, "WAITING": 0}
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
            t.state == TrialState.FAIL and FAIL_REASON in t.user_attrs
        ):
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
    """The study file's sampler; a bad argument is a ConfigError naming ``sampler``."""
    kw = {k: v for k, v in spec.sampler.items() if k != "kind"}
    # Workers (and reruns) must not replay one random sequence: salt the seed.
    if isinstance(kw.get("seed"), int):
        kw["seed"] = kw["seed"] + 7919 * salt
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
        except (TypeError, ValueError) as e:
            raise ConfigError(f"sampler={spec.sampler}: {e}") from None


def make_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    kw = {k: v for k, v in spec.pruner.items() if k not in ("kind", "monitor")}
    cls = {
        "median": optuna.pruners.MedianPruner,
        "hyperband": optuna.pruners.HyperbandPruner,
        "none": optuna.pruners.NopPruner,
    }[spec.pruner["kind"]]
    try:
        return cls(**kw)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"pruner={spec.pruner}: {e}") from None


def progress_line(trial: optuna.trial.FrozenTrial, worker: int) -> str:
    secs = trial.duration.total_seconds() if trial.duration else float("nan")
    value = "" if trial.value is None else f" value={trial.value:.4f}"
    params = " ".join(
        f"{shown_key(k)}={v:.4g}" if isinstance(v, float) else f"{shown_key(k)}={v}"
        for k, v in trial.params.items()
    )
    reason = trial.user_attrs.get(FAIL_REASON, "") if trial.state == TrialState.FAIL else ""
    reason = f" ({reason[:200]})" if reason else ""
    return (
        f"[w{worker}] trial {trial.number:>3} {trial.state.name:<8}{value}{reason} "
        f"{secs:.1f}s {params}"
    )


def quiet_libraries() -> None:
    runtime.setup()
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
    study = optuna.load_study(
        study_name=ctx.study_name,
        storage=storage,
        sampler=make_sampler(ctx.spec, index + 101 * n_before),
        pruner=make_pruner(ctx.spec),
    )
    lock = study_lock(ctx.storage_url, ctx.study_name)
    objective = Objective(ctx, lock)
    batched = enabled(ctx)
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
            if action == "run" and batched:  # a group of trials, as one program
                trials = claim(study, ctx, objective)
                lock.release()
                run_claimed(study, trials, objective, report)
            elif action == "run":  # the objective releases the lock once the trial exists
                study.optimize(
                    objective,
                    n_trials=1,
                    catch=(Exception,),
                    callbacks=[report],
                    gc_after_trial=True,
                )
        finally:
            lock.release()
        if action == "stop":
            return
        if action == "wait":
            time.sleep(POLL_S)


def spawned_worker(ctx: WorkerContext, index: int, ready) -> None:
    """Entry point of a worker process (``multiprocessing`` spawn context)."""
    work(ctx, index, ready)

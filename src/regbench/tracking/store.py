"""MLflow tracking: store location, runs with params/tags/config, an epoch-level logger.

Default store: ``sqlite:///<repo root>/mlruns/mlflow.db`` with artifacts under
``mlruns/artifacts``; ``MLFLOW_TRACKING_URI`` replaces it (a server, PostgreSQL, ...).
Runs are driven through :class:`mlflow.MlflowClient` (no global active run), so
sweeps can run trials from threads or processes.
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from regbench.paths import mlruns_dir


def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    """Every SQLite connection (MLflow's store, Optuna's storage) in write-ahead-log mode
    with ``synchronous=NORMAL``: a commit then appends to the log without an fsync (the
    log is synced at checkpoints), where the default journal fsyncs several times per
    commit, ~5 ms each on this kind of disk, and a run commits once per epoch. WAL keeps
    the database consistent after a crash (the last commits may be lost, never
    corrupted); readers and a writer no longer block each other. Local disks only, as
    for any SQLite store."""
    import sqlite3

    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def install_sqlite_pragmas() -> None:
    """Register :func:`_sqlite_pragmas` for every SQLAlchemy engine (idempotent). Called
    wherever a store is opened (:func:`get_client`, the sweep's Optuna storage), not at
    import."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not event.contains(Engine, "connect", _sqlite_pragmas):
        event.listen(Engine, "connect", _sqlite_pragmas)


@contextmanager
def deferred_sigint() -> Iterator[None]:
    """Hold a Ctrl-C that arrives during a store write until the write is done.

    A KeyboardInterrupt raised inside SQLAlchemy's commit can leave the connection in an
    open write transaction, kept alive by the exception's traceback; on SQLite the run's
    final FAILED/KILLED bookkeeping then waits on that lock and fails with "database is
    locked", leaving the run RUNNING. Here the signal is recorded and the previous handler
    is called once the write has finished. Main thread only (Python delivers signals
    there); elsewhere, or when SIGINT is not handled by a Python callable, a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous):  # ignored, or the C default
        yield
        return
    held: list = []
    signal.signal(signal.SIGINT, lambda signum, frame: held.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        previous(signal.SIGINT, held[0])


PARENT_TAG = "mlflow.parentRunId"
PARENT_ENV = "REGBENCH_PARENT_RUN_ID"  # set by sweeps/multirun for child runs
ERROR_TAG = "error"
#: a run's configuration without its seed: ``<label> (<hash>)``; MLflow's runs table grouped
#: by this tag shows one row per configuration with its seeds aggregated
CONFIG_ID_TAG = "regbench.config_id"
#: the sentence a grid's parent run adds to its description
GROUP_HINT = (
    f"Group the runs table by the tag `{CONFIG_ID_TAG}` to aggregate each configuration "
    "over its seeds."
)


def default_tracking_uri() -> str:
    return f"sqlite:///{mlruns_dir() / 'mlflow.db'}"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def get_client():
    # A local benchmark store has no use for usage telemetry (and offline it only waits).
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    install_sqlite_pragmas()
    import mlflow

    uri = tracking_uri()
    if uri == default_tracking_uri():
        mlruns_dir().mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    if uri in _OPENED or not uri.startswith("sqlite:///"):  # servers: nothing to open here
        return mlflow.MlflowClient(tracking_uri=uri)
    with _store_lock(uri):  # the client opens the store (and creates a fresh one's tables)
        client = mlflow.MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)
    _OPENED.add(uri)
    return client


_OPENED: set[str] = set()


@contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """An exclusive file lock beside a SQLite store while a process first opens it. On a
    fresh store MLflow creates its tables by Alembic migrations, which two processes
    starting at once (a sweep's workers, a run and a test watching it) interleave into
    "table _alembic_tmp_experiments already exists"; under the lock the first process
    creates the tables and the others find them made."""
    db = Path(uri.removeprefix("sqlite:///").split("?")[0])
    try:
        import fcntl
    except ImportError:  # not POSIX
        fcntl = None
    if fcntl is None or not db.parent.is_dir():
        yield
        return
    with open(db.with_name(db.name + ".init-lock"), "w") as lock, deferred_sigint():
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


# MLflow 3.x opens an experiment on the view its kind names; without the tag the UI
# infers it and lands on the GenAI (traces) view. "custom_model_development" is the
# model-training kind, which opens on the runs table (values from the UI bundle's
# ExperimentKind enum and mlflow/demo, MLflow 3.17).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
NOTE_TAG = "mlflow.note.content"  # the description the UI shows for a run or experiment


def sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:///PATH`` store (absolute), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?")[0]
    return Path(path).expanduser().resolve() if path and path != ":memory:" else None


def ensure_experiment(client, name: str) -> str:
    """The experiment's id, created if needed and marked as a model-training experiment
    (also when an older version created it). A SQLite store keeps its artifacts in
    ``artifacts/`` beside its file (``mlruns/artifacts`` for the default store):
    MLflow's default, ``./mlruns/<id>`` under whatever the working directory is, would
    file a ``MLFLOW_TRACKING_URI=sqlite:///other.db`` store's artifacts inside the
    project's default store folder. A server or another database keeps its own rule."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.tags.get(EXPERIMENT_KIND_TAG) is None:
            client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return exp.experiment_id
    db = sqlite_file(tracking_uri())
    location = (db.parent / "artifacts" / name).as_uri() if db is not None else None
    try:
        exp_id = client.create_experiment(
            name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
        )
    except Exception:  # created concurrently by another worker
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id
    return exp_id


def flatten(cfg: DictConfig | Mapping, prefix: str = "") -> dict[str, str]:
    """Resolved config as ``{"model.width": "128", ...}`` (MLflow params are strings)."""
    container = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    out: dict[str, str] = {}
    for k, v in container.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = str(v)
    return out


# Short names for the axes people vary most, used in run names.
_ABBREV = {
    "model.width": "w",
    "model.depth": "d",
    "model.dropout": "drop",
    "model.dropout_kind": "",
    "model.norm": "",
    "model.placement": "",
    "optim.lr": "lr",
    "optim.weight_decay": "wd",
    "data.label_noise": "noise",
    "data.name": "",
    "trainer.max_epochs": "ep",
    "reg": "",  # reg=[l1,max_norm] -> l1_max_norm
}


# Overrides that change how a run is shown or logged, not its results: left out of names.
_UNNAMED = ("seed", "experiment_name", "trainer.progress_bar")
# Params that are not part of a configuration: the seed, where the run is filed, how it
# is shown and logged (``logger.*``), and what train.run derives from the config.
_NOT_CONFIG = (*_UNNAMED, "model.params", "reg")


def config_id(params: Mapping[str, str], name: str = "") -> str:
    """``"<label> (<hash>)"`` naming a run's configuration without its seed, so runs that
    differ only in the seed share it: the label is the run name without its seed suffix
    (``mlp-w128-drop0.5-s2`` -> ``mlp-w128-drop0.5``), for reading, first so a narrow
    column still shows it; the hash (8 hex digits of SHA-1) covers every param except the
    seed and those that only say how a run is filed or logged, so two configurations with
    the same name never share an id. Stable across processes and machines (sorted JSON
    of the strings)."""
    import hashlib
    import json

    kept = {
        k: str(v) for k, v in params.items() if k not in _NOT_CONFIG and not k.startswith("logger.")
    }
    digest = hashlib.sha1(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:8]
    seed = params.get("seed")
    label = name.removesuffix(f"-s{seed}") if seed is not None else name
    return f"{label} ({digest})" if label else digest


def run_name(cfg: DictConfig, overrides: list[str] | tuple[str, ...] = ()) -> str:
    """``mlp-w128-drop0.5-s2`` from the model name, the varied axes and the seed."""
    parts = [str(cfg.model.name)]
    for ov in overrides:
        key, _, value = ov.lstrip("+~").partition("=")
        if key in _UNNAMED or key.startswith(("hydra", "logger.")) or not value:
            continue  # not part of what a run is: its seed has its own suffix
        # a group option (+experiment/vs_placement=before_bn) is named by its choice alone
        short = "" if "/" in key else _ABBREV.get(key, key.rsplit(".", 1)[-1])
        value = value.strip("[]").replace(",", "_").replace(" ", "")
        # an empty list (reg=[]) reads as "noreg", not as a bare "reg"
        parts.append(f"{short}{value}" if value else f"no{key.rsplit('.', 1)[-1]}")
    parts.append(f"s{cfg.seed}")
    return "-".join(parts)[:250]


def _lost_insert_race(e: BaseException) -> bool:
    """Whether a store write failed on a unique key another writer just filled."""
    text = str(e)
    return "UNIQUE constraint failed" in text or "duplicate key value" in text


class TrackedRun:
    def __init__(self, client, run_id: str) -> None:
        self.client, self.run_id = client, run_id

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        batch = [Metric(k, float(v), ts, step) for k, v in metrics.items()]
        with deferred_sigint():
            self.client.log_batch(self.run_id, metrics=batch)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        with deferred_sigint():
            self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_inputs(self, inputs: list) -> None:
        """The run's dataset inputs. Runs of one experiment log the same datasets, and a
        store creates a dataset by look-up-then-insert: when two processes create it at
        once (two sweeps through one tracking server), the later insert fails on the
        datasets table's unique key (experiment, name, digest): "UNIQUE constraint
        failed" on SQLite, "duplicate key value" on PostgreSQL. The dataset then exists,
        so the retry finds it and only links the run. Seen once in tests/test_scaleout.py's
        two-sweep test (a trial FAILED on it); a threaded test did not reproduce it on
        demand, so no test pins it."""
        for attempt in range(4):
            try:
                with deferred_sigint():
                    self.client.log_inputs(self.run_id, inputs)
                return
            except Exception as e:  # MlflowException or RestException, by store
                if attempt == 3 or not _lost_insert_race(e):
                    raise
                time.sleep(0.05 * (attempt + 1))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        with deferred_sigint():
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_text(self, text: str, name: str) -> None:
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / name
            p.write_text(text)
            self.log_artifact(p)


def log_params(client, run_id: str, params: Mapping[str, str]) -> None:
    from mlflow.entities import Param

    items = [Param(k, v[:6000]) for k, v in params.items()]
    for i in range(0, len(items), 100):  # MLflow's per-batch limit
        with deferred_sigint():
            client.log_batch(run_id, params=items[i : i + 100])


@contextmanager
def tracked_run(
    experiment: str,
    name: str,
    cfg: DictConfig | None = None,
    tags: Mapping[str, Any] | None = None,
    parent_run_id: str | None = None,
) -> Iterator[TrackedRun]:
    """An MLflow run that ends FINISHED, or FAILED/KILLED with the error in a tag.

    Every run with a seed is tagged :data:`CONFIG_ID_TAG` (:func:`config_id`) here, the
    one place single, batched and direct runs all pass through: from ``cfg`` when given,
    else, when it ends, from the params the caller logged (a direct run logs them itself).
    """
    client = get_client()
    exp_id = ensure_experiment(client, experiment)
    parent_run_id = parent_run_id or os.environ.get(PARENT_ENV)
    all_tags = {k: str(v) for k, v in (tags or {}).items()}
    params = flatten(cfg) if cfg is not None else None
    if params is not None and "seed" in params:
        all_tags.setdefault(CONFIG_ID_TAG, config_id(params, name))
    if params is None:  # a direct run or a grid's parent: its lineage is tagged here (train.run
        # and the batched runs tag theirs once they know the device)
        from regbench.tracking.lineage import environment_tags

        all_tags = {**environment_tags(), **all_tags}
    if parent_run_id:
        all_tags[PARENT_TAG] = parent_run_id
    if os.environ.get("REGBENCH_SWEEP_ID"):  # set by regbench.sweep.multirun for `train -m` grids
        all_tags.setdefault("sweep.id", os.environ["REGBENCH_SWEEP_ID"])
    with deferred_sigint():
        run = client.create_run(exp_id, run_name=name, tags=all_tags)
    tracked = TrackedRun(client, run.info.run_id)
    try:
        if params is not None:
            log_params(client, tracked.run_id, params)
            tracked.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config.yaml")
        yield tracked
    except BaseException as e:
        status = "FAILED" if isinstance(e, Exception) else "KILLED"
        with deferred_sigint():  # a second Ctrl-C still lets the run be marked
            client.set_tag(tracked.run_id, ERROR_TAG, f"{type(e).__name__}: {e}"[:5000])
            if CONFIG_ID_TAG not in all_tags:
                _tag_config_id(client, tracked.run_id, name)
            client.set_terminated(tracked.run_id, status)
        raise
    with deferred_sigint():
        if CONFIG_ID_TAG not in all_tags:
            _tag_config_id(client, tracked.run_id, name)
        client.set_terminated(tracked.run_id, "FINISHED")


def _tag_config_id(client, run_id: str, name: str) -> None:
    """Tag :data:`CONFIG_ID_TAG` from the params a run has logged, if they hold a seed
    (a grid's parent run has none, and is no configuration)."""
    params = client.get_run(run_id).data.params
    if "seed" in params:
        client.set_tag(run_id, CONFIG_ID_TAG, config_id(params, name))

"""Scale-out for real: `regbench sweep` commands started as separate processes, the way
separate machines would run them, sharing a PostgreSQL server (Optuna storage and MLflow
backend store) or logging through an `mlflow server`. Both servers are real, started on
127.0.0.1 by the fixtures below (tests/servers.py)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from conftest import TINY
from servers import mlflow_server, postgres_server

PER_EPOCH = ("train/loss", "train/acc", "val/loss", "val/acc")


pytestmark = pytest.mark.scaleout  # ~2 min of subprocesses: `make test-scaleout` (CI runs it)


def _own_dir(prefix: str) -> Path:
    """A temp dir of the fixture's own (pytest prunes old basetemp dirs, which a
    session-long server must outlive)."""
    return Path(tempfile.mkdtemp(prefix=prefix))


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server for the session, with databases ``optuna`` and ``mlflow``."""
    root = _own_dir("regbench-pg-")
    with postgres_server(root, ("optuna", "mlflow")) as url:
        yield url
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def tracking_server():
    root = _own_dir("regbench-mlflow-server-")
    with mlflow_server(root) as url:
        yield url
    shutil.rmtree(root, ignore_errors=True)


def start_sweep(spec: Path, storage: str, tracking_uri: str, tmp: Path, name: str, machine=""):
    """One `regbench sweep` command. Each ``machine`` has its own temp dir: commands on
    different machines share no file lock, so only a lock on the shared server can keep
    them from overshooting n_trials."""
    home = tmp / (machine or name)
    home.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "TMPDIR": str(home),
        "OMP_NUM_THREADS": "1",
        "REGBENCH_MLRUNS": str(home / "mlruns"),
    }
    log = open(tmp / f"{name}.log", "w")  # noqa: SIM115
    cmd = [sys.executable, "-m", "regbench.cli", "sweep", str(spec), "--storage", storage]
    return subprocess.Popen(
        cmd, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def wait_all(procs, tmp: Path, timeout: float = 540) -> None:
    deadline = time.time() + timeout
    for name, p in procs.items():
        try:
            p.wait(max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        assert p.returncode == 0, (tmp / f"{name}.log").read_text()[-3000:]


def kill_mid_trial(proc, client, experiment: str, log: Path):
    """SIGKILL ``proc`` while one of its child runs trains; returns that run (a list)."""
    deadline = time.time() + 400
    while True:
        assert proc.poll() is None and time.time() < deadline, log.read_text()[-3000:]
        exp = client.get_experiment_by_name(experiment)
        mine = exp and client.search_runs(
            [exp.experiment_id],
            f"tags.`sweep.worker` LIKE '%:{proc.pid}' and attributes.status = 'RUNNING'",
        )
        if mine:
            break
        time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return mine


def study_family(client, experiment: str):
    """(parent run, child runs) of the experiment's one study, from the MLflow store."""
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    [parent] = [r for r in runs if r.data.tags.get("sweep.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(runs) - 1  # one parent for every worker, no stray runs
    return parent, children


def test_three_machines_share_a_postgres_study_one_killed_mid_trial(postgres, tmp_path):
    """Three `regbench sweep` commands on one PostgreSQL storage, MLflow's backend store on
    the same server; the first is SIGKILLed while it trains a trial."""
    from mlflow import MlflowClient

    storage, tracking_uri = f"{postgres}/optuna", f"{postgres}/mlflow"
    n_trials, seeds = 6, [0, 1]
    spec = {
        "name": "pg3",
        "experiment_name": "pg3",
        "objective": {"metric": "val/acc"},
        "seeds": seeds,
        "n_trials": n_trials,
        "sampler": {"kind": "tpe", "seed": 0, "n_startup_trials": 2},
        "pruner": {"kind": "median", "n_startup_trials": 2},
        "heartbeat": {"interval": 1, "grace_period": 4},
        "overrides": [*TINY, "data.n_train=300", "trainer.max_epochs=2"],
        "space": {
            "optim.lr": {"type": "float", "low": 1e-4, "high": 0.3, "log": True},
            "model.dropout": [0.0, 0.5],
        },
    }
    path = tmp_path / "pg3.yaml"
    path.write_text(yaml.safe_dump(spec))
    procs = {f"w{i}": start_sweep(path, storage, tracking_uri, tmp_path, f"w{i}") for i in range(3)}
    victim = procs.pop("w0")
    client = MlflowClient(tracking_uri=tracking_uri)
    mine = kill_mid_trial(victim, client, "pg3", tmp_path / "w0.log")
    killed_trial = int(mine[0].data.tags["sweep.trial"])
    wait_all(procs, tmp_path)

    trials = optuna.load_study(study_name="pg3", storage=storage).get_trials()
    states = Counter(t.state.name for t in trials)
    ended = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(ended) == n_trials  # exactly n_trials, no overshoot across the three
    assert states["RUNNING"] == states["WAITING"] == 0
    [dead] = [t for t in trials if t.state == TrialState.FAIL]  # the killed worker's trial
    assert dead.number == killed_trial and "fail_reason" not in dead.user_attrs
    [retry] = [t for t in trials if t.system_attrs.get("failed_trial") == killed_trial]
    assert retry.params == dead.params and retry in ended

    parent, children = study_family(client, "pg3")
    assert parent.info.status == "FINISHED"
    by_id = {c.info.run_id: c for c in children}
    for t in ended:
        ids = t.user_attrs["mlflow_run_ids"]  # a retry reuses the seeds its first try finished
        if t.state == TrialState.COMPLETE:  # every seed trained to the end
            assert sorted(ids) == [str(s) for s in seeds]
        runs = [by_id[ids[str(s)]] for s in seeds if str(s) in ids]
        want = ["FINISHED"] * len(runs)
        if t.state == TrialState.PRUNED:  # stopped on purpose in its last seed
            want[-1] = "KILLED"
        assert [r.info.status for r in runs] == want, (t.number, t.state)
        for run in runs:
            if run.info.status == "FINISHED":
                history = client.get_metric_history(run.info.run_id, "val/acc")
                assert [m.step for m in history] == [0, 1]
                assert "config.yaml" in [a.path for a in client.list_artifacts(run.info.run_id)]
    orphans = [
        c for c in children if c.info.status == "KILLED" and "sweep.pruned" not in c.data.tags
    ]  # noqa: E501
    assert [c.info.run_id for c in orphans] == [mine[0].info.run_id]  # marked KILLED, not RUNNING
    assert "worker died" in orphans[0].data.tags["error"]
    workers = {c.data.tags["sweep.worker"].rsplit(":", 1)[1] for c in children}
    assert str(victim.pid) in workers and len(workers) >= 2
    assert not [c for c in children if c.info.status == "RUNNING"]
    by_status = Counter(c.info.status for c in children)
    print(
        f"\npg3 trials by state: {dict(states)}; child runs by status: {dict(by_status)}; "
        f"{len(workers)} workers trained runs"
    )


def test_two_sweeps_log_through_an_mlflow_server(tracking_server, tmp_path):
    """Two `regbench sweep` commands at once through one tracking server: every run
    FINISHED, every metric history complete (epochs x keys), every artifact present."""
    from mlflow import MlflowClient

    epochs, seeds, n_trials = 2, [0, 1], 4
    spec = {
        "name": "srv",
        "experiment_name": "srv",
        "objective": {"metric": "val/acc"},
        "seeds": seeds,
        "n_trials": n_trials,
        "sampler": {"kind": "random", "seed": 0},
        "pruner": "none",
        "overrides": [*TINY, "data.n_train=300", f"trainer.max_epochs={epochs}"],
        "space": {"optim.lr": {"type": "float", "low": 1e-3, "high": 0.1, "log": True}},
    }
    path = tmp_path / "srv.yaml"
    path.write_text(yaml.safe_dump(spec))
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    procs = {}
    for name in ("a", "b"):  # one machine: the sweep's file lock is shared
        procs[name] = start_sweep(path, storage, tracking_server, tmp_path, name, "machine")
    wait_all(procs, tmp_path)

    client = MlflowClient(tracking_uri=tracking_server)
    parent, children = study_family(client, "srv")
    assert parent.info.status == "FINISHED"
    assert len(children) == n_trials * len(seeds)
    assert all(c.info.status == "FINISHED" for c in children)
    assert len({c.data.tags["sweep.worker"] for c in children}) == 2  # both logged runs
    for c in children:
        for key in PER_EPOCH:
            history = client.get_metric_history(c.info.run_id, key)
            assert [m.step for m in history] == list(range(epochs)), key
        assert {"test/acc", "test/loss"} <= set(c.data.metrics)
        assert [a.path for a in client.list_artifacts(c.info.run_id)] == ["config.yaml"]
    plots = [a.path for a in client.list_artifacts(parent.info.run_id, "plots")]
    assert "plots/optimization_history.png" in plots
    assert "spec.yaml" in [a.path for a in client.list_artifacts(parent.info.run_id)]


def test_the_study_lock_on_postgres_excludes_other_connections(postgres):
    """What keeps machines from overshooting n_trials: while one worker holds the study's
    lock, no other connection (another machine) can take it; released, it can."""
    import sqlalchemy

    from regbench.sweep.worker import AdvisoryLock, study_lock

    url = f"{postgres}/optuna"
    lock = study_lock(url, "locked-study")
    assert isinstance(lock, AdvisoryLock)
    other = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)

    def other_machine_gets_it() -> bool:
        with other.connect() as con:  # a session of its own; its locks end with it
            return con.execute(sqlalchemy.text(f"SELECT pg_try_advisory_lock({lock.key})")).scalar()

    lock.acquire()
    assert other_machine_gets_it() is False
    lock.release()
    assert other_machine_gets_it() is True

"""The local SQLite store: several processes opening a fresh store at once."""

from __future__ import annotations

import os
import subprocess
import sys

OPEN = (
    "from regbench.tracking import ensure_experiment, get_client; c = get_client(); "
    "ensure_experiment(c, 'race'); print(len(c.search_experiments()))"
)


def test_processes_opening_a_fresh_store_at_once_all_succeed(tmp_path):
    """MLflow creates a fresh store's tables by migrations; unguarded, two processes
    interleave them ("table _alembic_tmp_experiments already exists"). get_client opens
    a SQLite store under a file lock, so every process finds one consistent store."""
    env = {**os.environ, "REGBENCH_MLRUNS": str(tmp_path / "store"), "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err.decode()[-2000:]
        assert int(out.decode().split()[-1]) >= 1


def test_a_sqlite_store_elsewhere_keeps_its_artifacts_beside_it(tmp_path, monkeypatch):
    """The newcomer's walk: with MLFLOW_TRACKING_URI=sqlite:///other.db the runs went to
    other.db and their artifacts to ./mlruns/<experiment id>/ of the working directory
    (MLflow's default), inside the project's own store folder. They now go to
    artifacts/<experiment>/ beside the database file, as the default store's do."""
    from regbench.tracking import tracked_run

    store, cwd = tmp_path / "store", tmp_path / "cwd"
    store.mkdir(), cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'other.db'}")
    note = tmp_path / "note.txt"
    note.write_text("x")
    with tracked_run("elsewhere", "r") as run:
        run.log_artifact(note)
    assert (store / "artifacts" / "elsewhere" / run.run_id / "artifacts" / "note.txt").is_file()
    assert list(cwd.iterdir()) == []


def test_a_group_option_names_a_run_by_its_choice():
    """`+experiment/vs_placement=before_bn` read 'mlp-experiment/vs_placementbefore_bn-...'
    in reproductions' run names (newcomer's walk)."""
    from regbench.config import compose
    from regbench.tracking import run_name

    cfg = compose(["model.width=64"])
    assert run_name(cfg, ["+experiment/vs_placement=before_bn", "model.width=64"]) == (
        "mlp-before_bn-w64-s0"
    )

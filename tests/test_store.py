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

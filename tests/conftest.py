"""Shared fixtures: an isolated MLflow store per test session, tiny configs.

Tests use the real things (MLflow's SQLite store, Lightning's trainer, Optuna's RDB
storage); only sizes are shrunk. Each pytest worker gets one torch thread so that
parallel workers never oversubscribe the machine's cores.
"""

from __future__ import annotations

import os
import uuid

os.environ.setdefault("OMP_NUM_THREADS", "1")  # inherited by subprocesses too

import pytest
import torch

torch.set_num_threads(1)

from regbench import runtime  # noqa: E402

runtime.setup()  # what the CLI entry point does: quiet Lightning, plain CUDA check


@pytest.fixture(scope="session", autouse=True)
def _isolated_store(tmp_path_factory):
    """Point the default MLflow/Optuna store (and reports/) at temporary folders."""
    path = tmp_path_factory.mktemp("mlruns")
    keys = ("REGBENCH_MLRUNS", "REGBENCH_REPORTS", "MLFLOW_TRACKING_URI")
    old = {k: os.environ.get(k) for k in keys}
    os.environ["REGBENCH_MLRUNS"] = str(path)
    os.environ["REGBENCH_REPORTS"] = str(tmp_path_factory.mktemp("reports"))
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    yield path
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def experiment() -> str:
    """A fresh experiment name, so tests can count their own runs."""
    return f"test-{uuid.uuid4().hex[:10]}"


# Small, fast MNIST-1D settings shared by the end-to-end tests.
TINY = [
    "data.n_train=600",
    "data.n_test=200",
    "data.batch_size=50",
    "model.width=32",
    "trainer.progress_bar=false",
]


@pytest.fixture
def tiny():
    """``tiny(*overrides)`` composes the real config, shrunk for tests."""
    from regbench.config import compose

    def make(*overrides: str, experiment_name: str | None = None):
        extra = [f"experiment_name={experiment_name}"] if experiment_name else []
        return compose([*TINY, "trainer.max_epochs=2", *overrides, *extra])

    return make


def runs_of(experiment_name: str):
    """All MLflow runs of an experiment in the session store (newest first)."""
    from regbench.tracking import get_client

    client = get_client()
    exp = client.get_experiment_by_name(experiment_name)
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], max_results=1000)

"""Batched grids through the sweep machinery: ``run_grid`` batched against one by one
(same states, metrics, params and tag keys; a diverging point fails per seed), and a
SIGKILLed batched grid (MLPs, and the 1-D CNN) that resumes to every point COMPLETE."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from conftest import TINY, runs_of
from regbench.batched.plan import EXEC_TAG
from regbench.tracking import get_client


def close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-5 * max(abs(a), abs(b)) + 1e-7


def test_run_grid_batched_matches_one_by_one_and_fails_per_seed(tmp_path, monkeypatch):
    from regbench.sweep import run_grid

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    base = [*TINY, "optim=sgd", "trainer.max_epochs=2", "data.n_train=300"]
    grid = {"model.width": [8, 16], "optim.lr": [0.05, 1.0e30]}
    out = {}
    for mode in ("1", "0"):
        monkeypatch.setenv("REGBENCH_BATCHED", mode)
        exp = f"grid-batched-{mode}-{tmp_path.name}"
        out[mode] = run_grid(f"g{mode}", base, grid, [0, 1], 1, exp, url)
    client = get_client()
    for b, s in zip(out["1"], out["0"], strict=True):
        assert b["point"] == s["point"] and b["seed"] == s["seed"]
        if b["point"]["optim.lr"] > 1:  # diverges: every seed fails, with its reason
            assert b["state"] == "FAIL" and "FloatingPointError: train/loss became" in b["error"]
            assert client.get_run(b["run_id"]).info.status == "FAILED"
            continue
        assert b["state"] == s["state"] == "COMPLETE"
        rb, rs = client.get_run(b["run_id"]).data, client.get_run(s["run_id"]).data
        assert (rb.tags[EXEC_TAG], rs.tags[EXEC_TAG]) == ("batched", "single")
        assert set(rb.tags) == set(rs.tags)  # sweep.study/trial/seed, parent, environment
        assert rb.params.pop("experiment_name") != rs.params.pop("experiment_name")
        assert rb.params == rs.params
        assert set(b["metrics"]) == set(s["metrics"])
        assert all(
            close(b["metrics"][k], s["metrics"][k]) for k in s["metrics"] if "time/" not in k
        )


@pytest.mark.parametrize("model", ["mlp", "cnn1d"])
def test_a_killed_batched_grid_resumes(model, experiment, tmp_path):

    from regbench.sweep import run_study
    from regbench.sweep.spec import parse_spec

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    raw = {
        "name": "kb",
        "experiment_name": experiment,
        "objective": {"metric": "val/acc"},
        "seeds": [0, 1],
        "sampler": "grid",
        "heartbeat": {"interval": 1, "grace_period": 2},
        "overrides": [*TINY, "trainer.max_epochs=150", "optim=sgd", f"model={model}"],
        "space": {"model.width": {"type": "categorical", "choices": [8, 16]}},
    }
    path = tmp_path / "kb.yaml"
    path.write_text(yaml.safe_dump(raw))
    log = open(tmp_path / "sweep.log", "w")  # noqa: SIM115
    cmd = [sys.executable, "-m", "regbench.cli", "sweep", str(path), "--storage", url]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:  # kill while the group trains (its runs exist and have logged an epoch)
        deadline = time.time() + 300
        while True:
            assert proc.poll() is None and time.time() < deadline, (
                tmp_path / "sweep.log"
            ).read_text()
            running = [
                r
                for r in runs_of(experiment)
                if r.info.status == "RUNNING" and "train/loss" in r.data.metrics
            ]
            if running:
                break
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert running[0].data.tags[EXEC_TAG] == "batched"
    before = optuna.load_study(study_name="kb", storage=url).trials
    assert TrialState.RUNNING in [t.state for t in before]
    study = run_study(parse_spec(raw, "kb"), storage=url, verbose=False)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert sorted(t.params["model.width"] for t in complete) == [8, 16]
    runs = runs_of(experiment)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    children = [r for r in runs if r.data.tags.get("sweep.role") != "parent"]
    assert sum(r.info.status == "FINISHED" for r in children) == 4
    assert all(r.info.status in ("FINISHED", "KILLED", "FAILED") for r in children)

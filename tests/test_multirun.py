"""Hydra multirun grids (`regbench train -m`): one MLflow parent run, a shared sweep id,
and cores // n_jobs torch threads per job."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest
import torch
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from conftest import TINY, runs_of
from regbench.sweep.multirun import SWEEP_ENV, MultirunTracking, available_cores, job_threads
from regbench.tracking import PARENT_ENV


def hydra_conf(experiment: str, n_jobs: int | None = None):
    launcher = {} if n_jobs is None else {"n_jobs": n_jobs}
    return OmegaConf.create(
        {
            "experiment_name": experiment,
            "hydra": {"overrides": {"task": ["model.width=16,32"]}, "launcher": launcher},
        }
    )


def test_thread_limit_is_cores_over_jobs(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = available_cores()
    assert job_threads(hydra_conf("x")) == cores  # basic launcher: one job at a time
    assert job_threads(hydra_conf("x", 2)) == max(1, cores // 2)
    assert job_threads(hydra_conf("x", -1)) == 1  # joblib: -1 = one job per core
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # an explicit limit wins
    assert job_threads(hydra_conf("x")) == 1


def test_callback_makes_jobs_children_and_fails_parent_on_failed_job(tiny, experiment):
    conf = hydra_conf(experiment, 2)
    cb = MultirunTracking()
    threads = torch.get_num_threads()
    cb.on_multirun_start(conf)
    try:
        parent_id, sweep_id = os.environ[PARENT_ENV], os.environ[SWEEP_ENV]
        cb.on_job_start(conf, task_function=None)
        assert torch.get_num_threads() == job_threads(conf)
        from regbench.train import run

        out = run(tiny("trainer.max_epochs=1", experiment_name=experiment))
        cb.on_job_end(conf, JobReturn(status=JobStatus.FAILED))
        cb.on_multirun_end(conf)
    finally:
        torch.set_num_threads(threads)
    assert PARENT_ENV not in os.environ and SWEEP_ENV not in os.environ
    runs = {r.info.run_id: r for r in runs_of(experiment)}
    parent, child = runs[parent_id], runs[out["run_id"]]
    assert parent.info.status == "FAILED"  # a job failed
    assert parent.data.tags["sweep.id"] == child.data.tags["sweep.id"] == sweep_id
    assert child.data.tags["mlflow.parentRunId"] == parent_id
    assert parent.data.tags["sweep.overrides"] == "model.width=16,32"


def _train_m(experiment: str, tmp_path, *grid: str, env: dict | None = None):
    cmd = [
        sys.executable,
        "-m",
        "regbench.cli",
        "train",
        "-m",
        *TINY,
        "trainer=fast",
        *grid,
        f"experiment_name={experiment}",
        f"hydra.sweep.dir={tmp_path}",
    ]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})}
    )
    runs = runs_of(experiment)
    [parent] = [r for r in runs if r.data.tags.get("sweep.role") == "parent"]
    children = [r for r in runs if r is not parent]
    for c in children:
        assert c.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert c.data.tags["sweep.id"] == parent.data.tags["sweep.id"]
    assert f"MLflow parent run {parent.info.run_id}" in done.stdout
    return done, parent, children


def test_train_multirun_grid_shares_one_parent(experiment, tmp_path):
    """The default launcher (hydra/launcher=batched) trains the grid as one group."""
    done, parent, children = _train_m(experiment, tmp_path, "model.width=16,32")
    assert done.returncode == 0, done.stderr[-3000:]
    assert parent.info.status == "FINISHED" and len(children) == 2
    assert sorted(c.data.params["model.width"] for c in children) == ["16", "32"]
    for c in children:
        assert c.info.status == "FINISHED"
        assert c.data.tags["regbench.exec"] == "batched"
        assert c.data.metrics["test/acc"] > 0


def test_train_multirun_a_diverging_job_fails_alone_and_fails_the_parent(experiment, tmp_path):
    grid = ["experiment=model_double_descent", "trainer.max_epochs=1"]
    done, parent, children = _train_m(
        experiment, tmp_path, *grid, "trainer.limit_train_batches=1.0", "optim.lr=0.01,1e6"
    )
    assert done.returncode == 1  # Hydra reports the failed job, as with its basic launcher
    assert "FloatingPointError: train/loss became nan at epoch 0" in done.stderr
    assert "Traceback" not in done.stderr
    status = {c.data.params["optim.lr"]: c.info.status for c in children}
    assert status == {"0.01": "FINISHED", "1000000.0": "FAILED"}
    assert parent.info.status == "FAILED"


def test_a_failed_grid_run_again_resumes_keeping_its_finished_jobs(experiment, tmp_path):
    """The newcomer's walk: rerunning an interrupted or failed `train -m` grid retrained
    every job under a new parent. Now the same command reopens the parent, keeps the
    finished job's run and trains only the rest (here the diverging job, which fails
    again)."""
    grid = ["experiment=model_double_descent", "trainer.max_epochs=1", "optim.lr=0.01,1e6"]
    grid += ["trainer.limit_train_batches=1.0"]  # every batch: the 1e6 job diverges
    first, parent, children = _train_m(experiment, tmp_path, *grid)
    assert first.returncode == 1 and parent.info.status == "FAILED"
    [kept] = [c for c in children if c.info.status == "FINISHED"]
    again, parent2, children2 = _train_m(experiment, tmp_path, *grid)
    assert again.returncode == 1 and parent2.info.run_id == parent.info.run_id
    assert f"resuming the grid (it ended FAILED); MLflow parent run {parent.info.run_id}, " in (
        again.stdout
    )
    assert "training 1 job(s), batched where they can be (1 finished before, kept)" in (
        again.stdout
    )
    status = sorted((c.data.params["optim.lr"], c.info.status) for c in children2)
    assert status == [("0.01", "FINISHED"), ("1000000.0", "FAILED"), ("1000000.0", "FAILED")]
    assert [c.info.run_id for c in children2 if c.info.status == "FINISHED"] == [kept.info.run_id]
    assert parent2.info.status == "FAILED"


def test_train_multirun_one_by_one_with_batching_off(experiment, tmp_path):
    env = {"REGBENCH_BATCHED": "0"}
    done, parent, children = _train_m(experiment, tmp_path, "model.width=16,32", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert parent.info.status == "FINISHED" and len(children) == 2
    assert all("regbench.exec" not in c.data.tags for c in children)  # train.run, alone


def compose_hydra(*overrides: str):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from regbench.paths import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


def test_launcher_configs_compose():
    cfg = compose_hydra("hydra/launcher=local")
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher") and cfg.hydra.launcher.n_jobs == 2
    assert (
        cfg.hydra.callbacks.multirun_tracking._target_ == "regbench.sweep.multirun.MultirunTracking"
    )
    # hydra-submitit-launcher is the optional extra regbench[slurm]: with it the launcher
    # composes, without it composing names the missing plugin's config.
    if importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is not None:
        slurm = compose_hydra("hydra/launcher=slurm")
        assert "submitit" in slurm.hydra.launcher._target_
    else:
        with pytest.raises(Exception, match="submitit_slurm"):
            compose_hydra("hydra/launcher=slurm")


def test_train_multirun_bad_input_stops_before_any_job_trains(experiment, tmp_path):
    """Every job is composed and built before Hydra starts the grid: a bad job is one
    line and exit 2, and no run exists, not even the grid's parent (issue 19)."""
    cmd = [sys.executable, "-m", "regbench.cli", "train", "-m", *TINY, "trainer=fast"]
    done = subprocess.run(
        [*cmd, "model.width=16,abc", f"experiment_name={experiment}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(
        "regbench train: model.width='abc' is not valid; it must be an integer (job: "
    )
    assert "model.width=abc" in line
    assert runs_of(experiment) == []  # no parent run, no child


def test_train_multirun_names_its_bars_and_prints_the_compare_command(experiment, tmp_path):
    """The grid's batched bar names its group and shows metrics; the printed parent name is
    the one `regbench compare` takes, and the last lines are that exact command."""
    from regbench.report.compare import compare

    done, parent, children = _train_m(experiment, tmp_path, "seed=0,1", "trainer.progress_bar=true")
    assert done.returncode == 0, done.stderr[-3000:]
    name = parent.info.run_name
    assert name.startswith("multirun-") and len(children) == 2
    assert done.stdout.startswith(f"{name}: MLflow parent run {parent.info.run_id}")
    assert done.stdout.strip().splitlines()[-1] == f"  regbench compare {name}"
    assert parent.data.tags["mlflow.note.content"].count(f"`regbench compare {name}`") == 1
    bar = [f for f in re.split(r"[\r\n]", done.stderr) if " 1/1 " in f]
    # named as the runs are (mlp-...-w32-trainerfast-s0 and -s1), less the seed's part
    assert bar and re.match(r"mlp-\S*w32\S*-s0,1 \(2 models, batched, means\): 100%", bar[-1])
    assert "tr_loss=" in bar[-1] and "va_acc=" in bar[-1]
    text, _ = compare(name)  # what the printed command runs
    assert f"parent run {parent.info.run_id}: 1 configurations, 2 runs" in text

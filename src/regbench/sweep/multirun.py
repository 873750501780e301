"""Hydra multirun grids grouped in MLflow: ``regbench train -m model.width=16,64 seed=0,1,2``.

A Hydra callback (registered under ``hydra.callbacks`` in ``conf/train.yaml``):

- ``on_multirun_start`` (launcher process) opens one MLflow parent run for the grid and
  exports ``REGBENCH_PARENT_RUN_ID`` and ``REGBENCH_SWEEP_ID``; every job's run becomes a
  child (``mlflow.parentRunId``) tagged ``sweep.id`` (``tracking.tracked_run`` reads both).
- ``on_job_start`` (in the job's process, also under joblib or submitit) sets the same
  variables again and limits torch to ``cores // n_jobs`` threads, so that
  ``hydra/launcher=joblib hydra.launcher.n_jobs=2`` does not oversubscribe the machine.
- ``on_multirun_end`` marks the parent FINISHED, or FAILED if a job failed. Hydra skips
  this hook when a job raises, so an exit handler closes the parent in that case: KILLED
  after a Ctrl-C (``runtime.INTERRUPTED``), else FAILED.
- **Resume**: when the experiment's newest grid with the same overrides did not finish
  (KILLED or FAILED), the same command reopens that parent run instead of a new one, and
  the batched launcher reuses its FINISHED jobs (each job's run is tagged
  :data:`JOB_TAG` with its overrides; :func:`finished_jobs`) and trains the rest. A
  finished grid run again starts a new parent and trains every job.
"""

from __future__ import annotations

import atexit
import os
import time
import uuid
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from regbench.tracking import PARENT_ENV

SWEEP_ENV = "REGBENCH_SWEEP_ID"
SWEEP_TAG = "sweep.id"
JOB_TAG = "sweep.job"  # a grid job's run: the job's overrides, space-joined
OVERRIDES_TAG = "sweep.overrides"


def unfinished_grid(client, exp_id: str, overrides: str):
    """The experiment's newest ``train -m`` parent run with these overrides, if it did not
    finish (KILLED or FAILED: interrupted, or a job failed); else None."""
    runs = client.search_runs(
        [exp_id],
        "tags.`sweep.kind` = 'multirun' and tags.`sweep.role` = 'parent'",
        order_by=["attributes.start_time DESC"],
        max_results=200,
    )
    same = [r for r in runs if r.data.tags.get(OVERRIDES_TAG) == overrides[:5000]]
    if same and same[0].info.status in ("KILLED", "FAILED"):
        return same[0]
    return None


def finished_jobs(client, parent_run_id: str) -> dict[str, Any]:
    """A grid parent's FINISHED job runs by their :data:`JOB_TAG` (newest first wins)."""
    exp_id = client.get_run(parent_run_id).info.experiment_id
    runs = client.search_runs(
        [exp_id],
        f"tags.`mlflow.parentRunId` = '{parent_run_id}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=5000,
    )
    out: dict[str, Any] = {}
    for r in runs:
        job = r.data.tags.get(JOB_TAG)
        if job is not None:
            out.setdefault(job, r)
    return out


def available_cores() -> int:
    """CPUs this process may use (respects taskset / SLURM CPU binding)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def thread_budget(n_jobs: int) -> int:
    """``cores // n_jobs`` torch threads per parallel job; ``OMP_NUM_THREADS`` caps it."""
    n = max(1, available_cores() // max(1, n_jobs))
    env = os.environ.get("OMP_NUM_THREADS", "")
    return min(n, int(env)) if env.isdigit() and int(env) > 0 else n


def launcher_jobs(config: DictConfig) -> int:
    """Parallel jobs of the configured launcher (joblib's -1 means every core)."""
    n = config.get("hydra", {}).get("launcher", {}).get("n_jobs")
    cores = available_cores()
    if not isinstance(n, int):
        return 1
    return max(1, cores + 1 + n if n < 0 else n)


def job_threads(config: DictConfig) -> int:
    return thread_budget(launcher_jobs(config))


def compare_command(name: str) -> str:
    """The command line that compares a grid's configurations (``regbench compare``)."""
    return f"regbench compare {name}"


class MultirunTracking(Callback):
    def __init__(self) -> None:
        self.parent_run_id: str | None = None
        self.sweep_id: str | None = None
        self.name: str | None = None  # the parent run's name, what `regbench compare` takes
        self.failed = 0

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from regbench import tracking

        overrides = list(config.hydra.overrides.task)
        client = tracking.get_client()
        exp_id = tracking.ensure_experiment(client, str(config.experiment_name))
        old = unfinished_grid(client, exp_id, " ".join(overrides))
        if old is not None:  # an interrupted grid: reopen it, its finished jobs are kept
            self._reopen(client, old)
            return
        self.sweep_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        self.name = f"multirun-{self.sweep_id}"
        tags = {
            SWEEP_TAG: self.sweep_id,
            "sweep.kind": "multirun",
            "sweep.role": "parent",
            OVERRIDES_TAG: " ".join(overrides)[:5000],
            tracking.NOTE_TAG: (
                f"Hydra multirun grid `regbench train -m {' '.join(overrides)}`: one child "
                f"run per grid point and seed. Seed-averaged table and figures: "
                f"`{compare_command(self.name)}` (artifacts under compare/). " + tracking.GROUP_HINT
            )[:5000],
        }
        run = client.create_run(exp_id, run_name=self.name, tags=tags)
        self.parent_run_id = run.info.run_id
        os.environ[PARENT_ENV], os.environ[SWEEP_ENV] = self.parent_run_id, self.sweep_id
        atexit.register(self._close_at_exit)  # no-op once on_multirun_end has run
        print(
            f"{self.name}: MLflow parent run {self.parent_run_id} in "
            f"experiment '{config.experiment_name}'",
            flush=True,
        )

    def _reopen(self, client, run) -> None:
        self.parent_run_id, self.name = run.info.run_id, run.info.run_name
        self.sweep_id = run.data.tags.get(SWEEP_TAG)
        client.update_run(self.parent_run_id, status="RUNNING")
        os.environ[PARENT_ENV], os.environ[SWEEP_ENV] = self.parent_run_id, self.sweep_id
        atexit.register(self._close_at_exit)
        done = len(finished_jobs(client, self.parent_run_id))
        print(
            f"{self.name}: resuming the grid (it ended {run.info.status}); MLflow parent run "
            f"{self.parent_run_id}, {done} finished job(s) kept",
            flush=True,
        )

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        import torch

        if self.parent_run_id:  # the job may run in another process (joblib, submitit)
            os.environ[PARENT_ENV], os.environ[SWEEP_ENV] = self.parent_run_id, self.sweep_id
            torch.set_num_threads(job_threads(config))

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if getattr(job_return, "status", None) is not None and job_return.status.name == "FAILED":
            self.failed += 1

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._close("FAILED" if self.failed else "FINISHED")
        if self.name:
            print(
                f"\ncompare the grid's configurations over seeds (add --baseline KEY=VALUE "
                f"to pick the reference; default: the first):\n  {compare_command(self.name)}",
                flush=True,
            )

    def _close_at_exit(self) -> None:
        from regbench.runtime import INTERRUPTED

        self._close("KILLED" if INTERRUPTED.is_set() else "FAILED")

    def _close(self, status: str) -> None:
        if self.parent_run_id is None:
            return
        from regbench import tracking

        run_id, self.parent_run_id = self.parent_run_id, None
        tracking.get_client().set_terminated(run_id, status)
        for key in (PARENT_ENV, SWEEP_ENV):
            os.environ.pop(key, None)

"""``regbench train -m`` as batched groups: the body of Hydra's launcher plugin
:class:`hydra_plugins.regbench_launcher.BatchedLauncher` (``hydra/launcher=batched``).

Hydra's basic launcher composes each job's config and calls the task function once per
job. Here every job's config is composed the same way (``load_sweep_config``, the same
``hydra.job.num``), the jobs' ``on_job_start`` callbacks run (the MLflow parent run and
the thread budget of :mod:`regbench.sweep.multirun`), and all the jobs go to
:func:`regbench.batched.runs.run_members`, which trains the batchable ones as groups and
the rest through ``train.run``. Each job then gets a :class:`JobReturn` (the run's
``test/acc``, or the exception it failed with) and its ``on_job_end`` callback, so a
failed job fails the parent run and Hydra reports it, as with the basic launcher.
With ``REGBENCH_BATCHED=0`` the basic launcher itself runs the jobs.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Sequence
from typing import Any

from regbench.sweep.multirun import JOB_TAG, finished_jobs


def launch(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list:
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.utils import JobReturn, JobStatus, configure_log, setup_globals
    from hydra.errors import CompactHydraException
    from omegaconf import open_dict, read_write

    from regbench import batched
    from regbench.batched.runs import run_members

    if not batched.enabled():
        return _basic(launcher, job_overrides, initial_job_idx)
    setup_globals()
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    callbacks = launcher.hydra_context.callbacks
    configs, cfgs, labels = [], [], []
    for idx, overrides in enumerate(job_overrides, initial_job_idx):
        config = launcher.hydra_context.config_loader.load_sweep_config(
            launcher.config, list(overrides)
        )
        with open_dict(config):
            config.hydra.job.id = config.hydra.job.num = idx
        HydraConfig.instance().set_config(config)
        callbacks.on_job_start(config=config, task_function=launcher.task_function)
        task_cfg = copy.deepcopy(config)
        with read_write(task_cfg), open_dict(task_cfg):
            del task_cfg["hydra"]
        configs.append(config)
        cfgs.append(task_cfg)
        labels.append(list(config.hydra.overrides.task))
    _check_all(cfgs, labels)
    results = _resumed(cfgs, labels)
    todo = [i for i, r in enumerate(results) if r is None]
    kept = f" ({len(cfgs) - len(todo)} finished before, kept)" if len(todo) < len(cfgs) else ""
    print(f"training {len(todo)} job(s), batched where they can be{kept}", flush=True)
    tags = [{JOB_TAG: " ".join(labels[i])} for i in todo]
    trained = run_members([cfgs[i] for i in todo], [labels[i] for i in todo], tags=tags)
    for i, res in zip(todo, trained, strict=True):
        results[i] = res
    out = []
    for idx, (config, cfg, label, res) in enumerate(
        zip(configs, cfgs, labels, results, strict=True), initial_job_idx
    ):
        ret = JobReturn(
            overrides=label,
            cfg=cfg,
            hydra_cfg=config,
            working_dir=os.getcwd(),
            task_name=str(config.hydra.job.name),
        )
        if isinstance(res, BaseException):
            # Hydra prints a CompactHydraException as its message alone (no traceback)
            # when the sweeper re-raises the first failed job's error
            error = CompactHydraException(f"{type(res).__name__}: {res}")
            error.__cause__ = res
            ret.status, ret.return_value = JobStatus.FAILED, error
            print(f"#{idx} {' '.join(label)}: FAILED: {res}", flush=True)
        else:
            ret.status, ret.return_value = JobStatus.COMPLETED, res.get("test/acc")
            print(
                f"#{idx} {' '.join(label)}: run {res['run_id']} test/acc={res['test/acc']:.4f}",
                flush=True,
            )
        callbacks.on_job_end(config=config, job_return=ret)
        out.append(ret)
    return out


def _resumed(cfgs: list, labels: list) -> list:
    """Per job: the result of its FINISHED run under this grid's parent (a resumed grid,
    :mod:`regbench.sweep.multirun`), or None (to train)."""
    from regbench import tracking

    parent = os.environ.get(tracking.PARENT_ENV)
    done = finished_jobs(tracking.get_client(), parent) if parent else {}
    out = []
    for label in labels:
        run = done.get(" ".join(label))
        out.append(None if run is None else {"run_id": run.info.run_id, **run.data.metrics})
    return out


def _check_all(cfgs: list, labels: list) -> None:
    """Bad input in any job: one line and exit status 2 before any job trains (as a single
    ``regbench train`` does; the grid's parent run ends FAILED)."""
    from regbench.errors import ConfigError
    from regbench.validate import check_config

    for cfg, label in zip(cfgs, labels, strict=True):
        try:
            check_config(cfg)
        except ConfigError as e:
            print(f"regbench train: {e} (job: {' '.join(label)})", file=sys.stderr, flush=True)
            raise SystemExit(2) from None


def _basic(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list:
    """Hydra's basic launcher (one job after another, the task function each time)."""
    from hydra._internal.core_plugins.basic_launcher import BasicLauncher

    basic = BasicLauncher()
    basic.setup(
        hydra_context=launcher.hydra_context,
        task_function=launcher.task_function,
        config=launcher.config,
    )
    return basic.launch(job_overrides, initial_job_idx)

"""A sweep trial: compose the config for the suggested point, train it once per seed
(``regbench.train.run``, one MLflow child run each) and return the aggregate metric.

Pruning: :class:`PruningCallback` reports the monitored validation metric to Optuna after
every epoch and raises ``optuna.TrialPruned`` when the pruner (median: Optuna's
MedianPruner; hyperband: Li et al. 2018, arXiv 1603.06560) says the trial is hopeless.
"""

from __future__ import annotations

import math
import os
import socket
import time
from dataclasses import dataclass, field

import optuna
import pytorch_lightning as pl

from regbench.sweep.spec import GRID_POINT, StudySpec

STUDY_TAG, TRIAL_TAG, SEED_TAG, ROLE_TAG = "sweep.study", "sweep.trial", "sweep.seed", "sweep.role"
WORKER_TAG = "sweep.worker"  # host:pid of the worker process that trained the run
FAIL_REASON = "fail_reason"  # Optuna user attr of a trial that failed (not of a dead worker's)
INTERRUPTED = "interrupted"  # user attr of a trial stopped by Ctrl-C (does not count either)


@dataclass
class WorkerContext:
    """Everything a worker process needs; plain data so that it pickles for ``spawn``."""

    spec: StudySpec
    study_name: str
    storage_url: str
    experiment_name: str
    parent_run_id: str
    n_trials: int | None
    timeout: float | None = None
    n_jobs: int = 1
    cli_overrides: list[str] = field(default_factory=list)
    t_start: float = field(default_factory=time.time)
    parent_pid: int | None = None  # a spawned worker stops when its parent is gone
    verbose: bool = True


class PruningCallback(pl.Callback):
    """Reports the monitored metric to Optuna after every validation epoch and raises
    ``TrialPruned`` when the pruner says so. Seed ``i`` reports at steps
    ``i * max_epochs + epoch`` so that all seeds of a trial share one curve."""

    def __init__(self, trial: optuna.Trial, monitor: str, step_offset: int, prune: bool) -> None:
        self.trial, self.monitor, self.step_offset, self.prune = trial, monitor, step_offset, prune
        self.run_id: str | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.run_id = getattr(trainer.logger, "version", None)  # the MLflow run id

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Here (not in on_validation_epoch_end) the module's epoch metrics are already
        # in callback_metrics: Lightning calls callbacks before the module in that hook.
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or value is None or not math.isfinite(float(value)):
            return
        epoch = trainer.current_epoch
        self.trial.report(float(value), self.step_offset + epoch)
        if self.prune and self.trial.should_prune():
            raise optuna.TrialPruned(f"{self.monitor}={float(value):.4g} at epoch {epoch}")


class Objective:
    """Trains one trial's config once per seed; returns the aggregate of the metric."""

    def __init__(self, ctx: WorkerContext, lock) -> None:  # lock: sweep_worker.LocalLock
        self.ctx, self.lock = ctx, lock
        spec = ctx.spec
        self.monitor = spec.pruner.get("monitor") or spec.metric.replace("test/", "val/")
        self.prune = spec.pruner["kind"] != "none"

    def __call__(self, trial: optuna.Trial) -> float:
        self.lock.release()  # the trial exists (RUNNING) now: other workers may decide
        try:
            return self._run(trial)
        except optuna.TrialPruned:
            raise
        except KeyboardInterrupt:  # Ctrl-C: Optuna marks it FAIL; not a fault of the point
            trial.set_user_attr(INTERRUPTED, True)
            raise
        except Exception as e:  # e.g. a composition error: the reason must be recorded
            if FAIL_REASON not in trial.user_attrs:
                trial.set_user_attr(FAIL_REASON, f"{type(e).__name__}: {e}"[:2000])
            raise

    def prepare(self, trial: optuna.Trial) -> tuple[list[str], list[str], dict]:
        """The trial's run label, its base overrides (all but the seed) and the results of
        seeds a dead worker already finished (a retry inherits its user attrs)."""
        spec, ctx = self.ctx.spec, self.ctx
        fixed = trial.user_attrs.get(GRID_POINT, {})  # a grid point, exactly as queued
        params = {p.key: fixed.get(p.key, p.suggest(trial, spec.is_grid)) for p in spec.space}
        # Run names show the varied axes, floats to 3 digits: mlp-lr0.00229-drop0.362-s1
        label = [f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()]
        base = [
            "trainer.progress_bar=false",
            *spec.overrides,
            *ctx.cli_overrides,
            *spec.point_overrides(params),
            f"experiment_name={ctx.experiment_name}",
        ]
        results: dict = {
            s: r
            for s, r in trial.user_attrs.get("seed_results", {}).items()
            if int(s) in spec.seeds
        }
        trial.set_user_attr("overrides", spec.point_overrides(params))
        return label, base, results

    def tags(self, trial: optuna.Trial, seed: int) -> dict:
        return {
            STUDY_TAG: self.ctx.study_name,
            TRIAL_TAG: trial.number,
            SEED_TAG: seed,
            WORKER_TAG: f"{socket.gethostname()}:{os.getpid()}",  # which machine ran it
        }

    def _run(self, trial: optuna.Trial) -> float:
        from regbench import batched
        from regbench.config import compose
        from regbench.train import run

        spec, ctx = self.ctx.spec, self.ctx
        if batched.enabled() and not self.prune and len(spec.seeds) > 1:
            return self._run_batched(trial)
        label, base, results = self.prepare(trial)
        run_ids = {s: r["run_id"] for s, r in results.items()}
        for i, seed in enumerate(spec.seeds):
            if str(seed) in results:
                continue
            cfg = compose([*base, f"seed={seed}"])
            cb = PruningCallback(trial, self.monitor, i * int(cfg.trainer.max_epochs), self.prune)
            tags = {**self.tags(trial, seed), "regbench.exec": "single"}
            try:
                metrics = run(
                    cfg, label, parent_run_id=ctx.parent_run_id, callbacks=[cb], tags=tags
                )
            except optuna.TrialPruned:
                self._pruned_run(cb.run_id)
                raise
            except Exception as e:
                trial.set_user_attr(FAIL_REASON, f"seed {seed}: {type(e).__name__}: {e}"[:2000])
                raise
            finally:
                if cb.run_id:
                    run_ids[str(seed)] = cb.run_id
                trial.set_user_attr("mlflow_run_ids", run_ids)
            results[str(seed)] = metrics
            trial.set_user_attr("seed_results", results)
        return self.value(trial, results)

    def _run_batched(self, trial: optuna.Trial) -> float:
        """The trial's seeds as one batched group (those that can batch)."""
        from regbench.batched.runs import run_members
        from regbench.config import compose_seeds

        spec, ctx = self.ctx.spec, self.ctx
        label, base, results = self.prepare(trial)
        run_ids = {s: r["run_id"] for s, r in results.items()}
        seeds = [s for s in spec.seeds if str(s) not in results]
        cfgs = compose_seeds(base, seeds)
        tags = [self.tags(trial, s) for s in seeds]
        outs = run_members(cfgs, [label] * len(cfgs), ctx.parent_run_id, tags)
        error = None
        for seed, out in zip(seeds, outs, strict=True):
            if isinstance(out, Exception):
                if getattr(out, "run_id", None):
                    run_ids[str(seed)] = out.run_id
                if error is None:
                    error = out
                    reason = f"seed {seed}: {type(out).__name__}: {out}"
                    trial.set_user_attr(FAIL_REASON, reason[:2000])
            else:
                results[str(seed)], run_ids[str(seed)] = out, out["run_id"]
        trial.set_user_attr("mlflow_run_ids", run_ids)
        trial.set_user_attr("seed_results", results)
        if error is not None:
            raise error
        return self.value(trial, results)

    def value(self, trial: optuna.Trial, results: dict) -> float:
        """The aggregate of the objective metric over the trial's seeds."""
        spec = self.ctx.spec
        missing = [s for s, r in results.items() if spec.metric not in r]
        if missing:
            have = sorted(k for k in results[missing[0]] if "/" in k)
            reason = f"objective.metric={spec.metric!r} not in the results; have: {have}"
            trial.set_user_attr(FAIL_REASON, reason)
            raise KeyError(reason)
        value = spec.aggregate_values([results[str(s)][spec.metric] for s in spec.seeds])
        if not math.isfinite(value):
            trial.set_user_attr(FAIL_REASON, f"{spec.metric} is {value}")
            raise FloatingPointError(f"{spec.metric} is {value}")
        return value

    @staticmethod
    def _pruned_run(run_id: str | None) -> None:
        if run_id:  # tracked_run marked it FAILED; a pruned run was stopped on purpose
            from regbench.tracking import get_client

            client = get_client()
            client.set_tag(run_id, "sweep.pruned", "true")
            client.set_terminated(run_id, "KILLED")

"""One training run: compose -> validate/build -> fit + test under an MLflow run."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Sequence

import pytorch_lightning as pl
from omegaconf import DictConfig

from regbench import streams, tracking
from regbench.data import build_data
from regbench.data.module import TensorDataModule
from regbench.diagnostics import DiagData, diagnostics_callback
from regbench.module import RegModule
from regbench.nn import build_model
from regbench.probes import probe_suite
from regbench.progress import EpochProgressBar
from regbench.reg import build_regularizers
from regbench.step_validation import step_validation
from regbench.tracking import artifacts, cost, lineage
from regbench.tracking.epoch_logger import MlflowEpochLogger
from regbench.validate import check_settings, check_transforms


def build(cfg: DictConfig):
    """Everything a run needs, built (and so validated) before any MLflow run exists."""
    check_settings(cfg)  # the checks that need neither data nor model (regbench.validate)
    # Every draw of the run from its own streams (docs/ARCHITECTURE.md, "Randomness"):
    # torch's global generator is never consumed, so nothing else can shift the run.
    root, clock = streams.Stream.of_run(cfg.seed), streams.Clock()
    splits = build_data(cfg.data, cfg.seed)
    with streams.seeded(root.child("init")):  # the layers initialise themselves
        model = build_model(cfg.model, splits.input_shape, splits.num_classes)
    streams.bind_model(model, root.child("layer"), clock)
    reg = build_regularizers(cfg, splits.num_classes)
    reg.bind(root.child("reg"), clock)
    check_transforms(cfg, tuple(splits.input_shape), splits.num_classes)
    t = cfg.trainer
    steps = t.steps_per_call
    clip = t.gradient_clip_val
    module = RegModule(model, cfg.optim, cfg.scheduler, t.max_epochs, reg, steps, clip, clock)
    data = TensorDataModule(
        splits,
        cfg.data.batch_size,
        cfg.seed,
        steps_per_call=steps,
        limit_train_batches=t.limit_train_batches,
    )
    s = splits
    diag_data = DiagData(
        s.x_train, s.y_train, s.x_test, s.y_test, cfg.data.batch_size, data.normalize
    )
    step_val = step_validation(t, s.x_val, s.y_val, data.normalize)
    if step_val is not None:  # trainer.val_every_n_steps: before the diagnostics
        reg.callbacks.append(step_val)
    diag = diagnostics_callback(cfg.diag, diag_data, probe_suite(cfg.get("diag"), cfg.seed))
    if diag is not None:
        reg.callbacks.append(diag)  # last: after early stopping has restored weights
    return splits, data, module


def make_trainer(cfg: DictConfig, logger, callbacks=()) -> pl.Trainer:
    t = cfg.trainer
    # With several steps per call the module clips and the data module limits batches.
    fused = t.steps_per_call > 1
    return pl.Trainer(
        max_epochs=t.max_epochs,
        accelerator=t.accelerator,
        devices=t.devices,
        precision=t.precision,
        deterministic=t.deterministic,
        limit_train_batches=1.0 if fused else t.limit_train_batches,
        limit_val_batches=t.limit_val_batches,
        limit_test_batches=t.limit_test_batches,
        check_val_every_n_epoch=t.check_val_every_n_epoch,
        gradient_clip_val=None if fused else t.gradient_clip_val,
        enable_progress_bar=t.progress_bar,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        logger=logger,
        callbacks=[*callbacks, EpochProgressBar()] if t.progress_bar else list(callbacks),
        default_root_dir=str(tracking.mlruns_dir() / "lightning"),
    )


def run(
    cfg: DictConfig,
    overrides: Sequence[str] = (),
    parent_run_id: str | None = None,
    callbacks: Sequence[pl.Callback] = (),
    tags: dict | None = None,
) -> dict:
    """Train and test one config. Returns the final logged metrics (``test/acc``, ...)
    and ``run_id``. ``callbacks`` are added to the trainer (e.g. an Optuna pruner);
    ``tags`` are added to the MLflow run."""
    splits, datamodule, module = build(cfg)
    n_params = sum(p.numel() for p in module.parameters())
    tags = {"data.fingerprint": splits.fingerprint(), "model.params": n_params, **(tags or {})}
    # Params beside the flattened config: the size (a param, so runs can be sorted and
    # plotted by it) and the regularizer list as one value (an empty ``reg`` group leaves
    # no reg.* params, so a grid over reg=[l1],[] is otherwise hard to group).
    extra = {"model.params": str(n_params), "reg": f"[{','.join(cfg.get('reg') or {})}]"}
    name = tracking.run_name(cfg, overrides)
    with tracking.tracked_run(cfg.experiment_name, name, cfg, tags, parent_run_id) as tracked:
        tracking.log_params(tracked.client, tracked.run_id, extra)
        inputs = lineage.dataset_inputs(splits, cfg.data, tags["data.fingerprint"])
        tracked.log_inputs(inputs)
        logger = MlflowEpochLogger.from_config(tracked, cfg.logger)
        timer = cost.timer(cfg.trainer)
        trainer = make_trainer(cfg, logger, [*module.reg.callbacks, *callbacks, timer])
        tracked.set_tags(lineage.environment_tags(str(trainer.strategy.root_device)))
        t0 = time.perf_counter()
        try:
            trainer.fit(module, datamodule=datamodule)
            fit_s = time.perf_counter() - t0
            trainer.test(module, datamodule=datamodule, verbose=False)
        except SystemExit:  # Lightning answers Ctrl-C with its teardown, then exit(1)
            if trainer.interrupted:  # so the run ends KILLED and an Optuna trial FAIL
                _restore_sigint()
                raise KeyboardInterrupt from None
            raise
        if cfg.logger.save_model:
            artifacts.log_state_dict(tracked, module.model)
        logger.finalize("success")
        spent = timer.metrics(fit_s)
        tracked.log_metrics(spent, step=trainer.current_epoch)
        if timer.tags():
            tracked.set_tags(timer.tags())
        metrics: dict = {**logger.last, **spent}
        metrics["run_id"] = tracked.run_id
    return metrics


def _restore_sigint() -> None:
    """Lightning ignores SIGINT during its shutdown and leaves it ignored; put Python's
    handler back, or the next Ctrl-C in this process (and every child process it starts,
    which inherit the ignored signal) would do nothing."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)

"""One training run: compose -> validate/build -> fit + test under an MLflow run."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from regbench import tracking
from regbench.data import build_data
from regbench.data.batches import limit_batches
from regbench.data.module import TensorDataModule
from regbench.errors import ConfigError, positive_int
from regbench.module import RegModule
from regbench.nn import build_model
from regbench.optim import build_scheduler, check_optim
from regbench.progress import EpochProgressBar
from regbench.reg import build_regularizers

# Lightning's info lines (GPU available, tips, "100% of batches") are noise in sweeps.
for _name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
    logging.getLogger(_name).setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message=".*LeafSpec.*")
# Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1 (fork safety on GPU hosts). Without a GPU
# driver every torch.cuda.is_available() then tries to load NVML (~0.13 ms, several times
# a step); the plain check is safe there, since there is no CUDA context to poison.
if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") == "1" and torch.cuda.device_count() == 0:
    del os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"]
warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")


def build(cfg: DictConfig):
    """Everything a run needs, built (and so validated) before any MLflow run exists."""
    positive_int("trainer.max_epochs", cfg.trainer.max_epochs)
    check_optim(cfg.optim)
    build_scheduler(cfg.scheduler, torch.optim.SGD([torch.zeros(1)], lr=1.0), 1)
    pl.seed_everything(cfg.seed, workers=False, verbose=False)
    splits = build_data(cfg.data, cfg.seed)
    model = build_model(cfg.model, splits.input_shape, splits.num_classes)
    reg = build_regularizers(cfg)
    t = cfg.trainer
    steps = t.get("steps_per_call", 1)
    positive_int("trainer.steps_per_call", steps)
    positive_int("logger.every_n_epochs", cfg.logger.get("every_n_epochs", 1))
    try:
        limit_batches(1, t.limit_train_batches)
    except ValueError as e:
        raise ConfigError(f"trainer.limit_train_batches: {e}") from None
    clip = t.gradient_clip_val
    module = RegModule(model, cfg.optim, cfg.scheduler, t.max_epochs, reg, steps, clip)
    data = TensorDataModule(
        splits,
        cfg.data.batch_size,
        cfg.seed,
        steps_per_call=steps,
        limit_train_batches=t.limit_train_batches,
    )
    return splits, data, module


def make_trainer(cfg: DictConfig, logger, callbacks=()) -> pl.Trainer:
    t = cfg.trainer
    # With several steps per call the module clips and the data module limits batches.
    fused = t.get("steps_per_call", 1) > 1
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
    tags = {
        "data.fingerprint": splits.fingerprint(),
        "model.params": sum(p.numel() for p in module.parameters()),
        **(tags or {}),
    }
    name = tracking.run_name(cfg, overrides)
    with tracking.tracked_run(cfg.experiment_name, name, cfg, tags, parent_run_id) as tracked:
        logger = tracking.MlflowEpochLogger(
            tracked, cfg.logger.background, cfg.logger.get("every_n_epochs", 1)
        )
        trainer = make_trainer(cfg, logger, [*module.reg.callbacks, *callbacks])
        tracked.set_tags(tracking.environment_tags(str(trainer.strategy.root_device)))
        trainer.fit(module, datamodule=datamodule)
        trainer.test(module, datamodule=datamodule, verbose=False)
        if cfg.logger.get("save_model", False):
            tracking.log_state_dict(tracked, module.model)
        logger.finalize("success")
        metrics: dict = dict(logger.last)
        metrics["run_id"] = tracked.run_id
    return metrics

"""A run's files in the store: its trained weights (``model.pt``, ``logger.save_model``)
and its resolved ``config.yaml``, written and read back by run id."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from regbench.tracking.store import TrackedRun, get_client

MODEL_ARTIFACT = "model.pt"


def log_state_dict(tracked: TrackedRun, model) -> None:
    """The trained weights as the run's ``model.pt`` artifact (``logger.save_model``), so
    a report can evaluate a model from the store alone (e.g. Monte-Carlo dropout)."""
    import torch

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / MODEL_ARTIFACT
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
        tracked.log_artifact(path)


def load_state_dict(run_id: str) -> dict:
    """The ``model.pt`` artifact of a run (CPU tensors)."""
    import torch

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one small file

    with tempfile.TemporaryDirectory() as d:
        path = get_client().download_artifacts(run_id, MODEL_ARTIFACT, d)
        return torch.load(path, map_location="cpu", weights_only=True)


def load_config(run_id: str) -> DictConfig:
    """The resolved ``config.yaml`` artifact of a run."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one small file
    with tempfile.TemporaryDirectory() as d:
        return OmegaConf.load(get_client().download_artifacts(run_id, "config.yaml", d))

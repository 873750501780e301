"""Process-wide settings, applied by an explicit call, never at import.

:func:`setup` is called by the entry points (``regbench`` CLI, sweep workers, the test
session); importing any regbench module leaves logging, warnings and the environment as
they were. It is idempotent.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings

#: Set by the command line when Ctrl-C ends the process (before SystemExit(130)): exit
#: handlers that close a parent run read it, so an interrupted grid ends KILLED, as its
#: child runs do, not FAILED.
INTERRUPTED = threading.Event()

#: Lightning's package loggers, and the loggers its info lines come from: rank_zero_info
#: ("GPU available", "TPU available", the tips advertising other services, "`Trainer.fit`
#: stopped") and the CUDA accelerator's "LOCAL_RANK" line. ``import pytorch_lightning``
#: sets its package logger back to INFO, and setup() usually runs before that import
#: (imports are lazy), so the emitting child loggers, which Lightning never sets, get the
#: level too.
LIGHTNING_LOGGERS = (
    "pytorch_lightning",
    "lightning.pytorch",
    "lightning_fabric",
    "pytorch_lightning.utilities.rank_zero",
    "lightning.pytorch.utilities.rank_zero",
    "lightning_fabric.utilities.rank_zero",
    "pytorch_lightning.accelerators.cuda",
    "lightning.pytorch.accelerators.cuda",
)


#: MLflow's and Alembic's info lines when a fresh store creates its tables ("Creating
#: initial MLflow database tables...", one line per migration): a first run's noise
STORE_LOGGERS = ("mlflow.store.db.utils", "alembic.runtime.migration")


def quiet_lightning() -> None:
    """Lightning's info lines (GPU available, tips, "100% of batches") are noise in sweeps."""
    for name in (*LIGHTNING_LOGGERS, *STORE_LOGGERS):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    # the closed-form reproductions (teacher_student, two_layer) step their own parameters
    warnings.filterwarnings("ignore", message=".*returned `None`, this fit will run with no opt")


def plain_cuda_check() -> None:
    """Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1 (fork safety on GPU hosts). Without
    a GPU driver every torch.cuda.is_available() then tries to load NVML (~0.13 ms,
    several times a step); the plain check is safe there, since there is no CUDA context
    to poison."""
    import torch

    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") == "1" and torch.cuda.device_count() == 0:
        del os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"]


def setup() -> None:
    quiet_lightning()
    plain_cuda_check()

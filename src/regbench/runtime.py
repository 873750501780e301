"""Process-wide settings, applied by an explicit call, never at import.

:func:`setup` is called by the entry points (``regbench`` CLI, sweep workers, the test
session); importing any regbench module leaves logging, warnings and the environment as
they were. It is idempotent.
"""

from __future__ import annotations

import ctypes
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


#: glibc's mallopt parameters (malloc.h) and the values :func:`keep_freed_memory` sets:
#: blocks up to 32 MiB (glibc's largest mmap threshold on 64-bit) come from the heap, and
#: up to 256 MiB of free heap stays with the process
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD, TRIM_THRESHOLD = 32 << 20, 256 << 20


def keep_freed_memory() -> bool:
    """Keep freed tensor memory in the process (glibc only; True if set).

    A training step allocates the same tensors every step (activations, their gradients:
    2.4 MB each in model_double_descent's width-300 group). glibc's malloc serves blocks
    above its mmap threshold with fresh pages and gives freed memory back to the kernel
    above its trim threshold (both adapt to what was freed, so the outcome depends on
    the process's allocation history), and every fresh page costs a page fault on first
    touch: ~2.3 us per 4 KiB page on this 2-core AMD EPYC VM, 1.4 ms to fill a fresh
    2.4 MB tensor against 0.04 ms reused. Measured on that group, one thread: with
    glibc's defaults 10-34K faults per epoch in some processes, none in others, and in
    one nearly every activation faulted (ReLU, its backward and the bias copies 22% of a
    profiled epoch, against 7% with these settings); 0 faults per epoch with them. End
    to end the gain was below this VM's noise (model_double_descent --seeds 10 gave the
    same values in a like time): what this removes is a per-process variable. PyTorch's
    CPU tuning guide recommends another allocator (jemalloc, tcmalloc) for the same
    reason; these two settings do it without one. Memory cost: up to 256 MiB of freed
    heap kept."""
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return False
        mallopt = ctypes.CDLL(None).mallopt
    except (ValueError, OSError, AttributeError):  # not glibc (macOS, musl)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


def setup() -> None:
    quiet_lightning()
    plain_cuda_check()
    keep_freed_memory()

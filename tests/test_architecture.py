"""The layout's rules, checked: the import-linter contracts of pyproject.toml (layers and
no cycles, as `make lint` runs them) and no side effects at import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe is not None, "lint-imports is missing: it is in the dev dependency group"
    out = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Contracts: 2 kept, 0 broken." in out.stdout


SIDE_EFFECTS = """
import logging, os, sys, warnings
# Third-party libraries add their own warning filters on import: import them first.
import torch, torchvision, pytorch_lightning, mlflow, optuna, hydra, matplotlib.pyplot
before = (dict(os.environ), list(warnings.filters),
          {n: logging.getLogger(n).level for n in ("pytorch_lightning", "lightning.pytorch")})
import sqlalchemy.event, sqlalchemy.engine
from omegaconf import OmegaConf
import regbench.cli, regbench.train, regbench.tracking, regbench.config, regbench.sweep
import regbench.reproductions, regbench.bench, regbench.reg, regbench.nn, regbench.data
after = (dict(os.environ), list(warnings.filters),
         {n: logging.getLogger(n).level for n in ("pytorch_lightning", "lightning.pytorch")})
assert before[1] == after[1], "warning filters changed"
assert before[2] == after[2], "log levels changed"
changed = {k for k in set(before[0]) | set(after[0]) if before[0].get(k) != after[0].get(k)}
# Lightning itself sets PYTORCH_NVML_BASED_CUDA_CHECK on import; that is not ours.
assert changed <= {"PYTORCH_NVML_BASED_CUDA_CHECK"}, changed
from regbench.tracking import _sqlite_pragmas
assert not sqlalchemy.event.contains(sqlalchemy.engine.Engine, "connect", _sqlite_pragmas)
assert not OmegaConf.has_resolver("rb_root")
print("clean")
"""


def test_importing_regbench_has_no_side_effects():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW")}
    out = subprocess.run(
        [sys.executable, "-c", SIDE_EFFECTS], capture_output=True, text=True, timeout=300, env=env
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("clean")

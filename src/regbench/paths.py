"""Where the project lives: the repo root, configs, the MLflow store and data caches.

The root is found from the installed package (editable install in the repo), so the
default MLflow store is the same whatever the working directory. ``REGBENCH_HOME``
overrides it (useful for a wheel install or an isolated test store).
"""

from __future__ import annotations

import os
from pathlib import Path


def _find_root() -> Path:
    env = os.environ.get("REGBENCH_HOME")
    if env:
        return Path(env).expanduser().resolve()
    here = Path(__file__).resolve().parents[2]
    if (here / "pyproject.toml").exists() and (here / "conf").is_dir():
        return here
    return Path.cwd().resolve()


ROOT: Path = _find_root()
CONF_DIR: Path = (
    ROOT / "conf" if (ROOT / "conf").is_dir() else Path(__file__).resolve().parent / "conf"
)


def mlruns_dir() -> Path:
    """Folder of the default MLflow store (``mlflow.db``) and its artifacts."""
    return Path(os.environ.get("REGBENCH_MLRUNS", ROOT / "mlruns")).resolve()


def data_dir() -> Path:
    """Default folder for downloaded data sets and generated caches (git-ignored)."""
    return Path(os.environ.get("REGBENCH_DATA", ROOT / "data")).resolve()

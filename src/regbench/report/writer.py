"""Writing a report: ``report.md`` and figures to a folder, the same files as
artifacts of the grid's parent MLflow run."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display; set before pyplot is imported anywhere

from regbench.paths import ROOT  # noqa: E402
from regbench.tracking import get_client  # noqa: E402


def report_dir(name: str, scale: str = "cpu") -> Path:
    """``reports/<name>/`` at the repo root (``reports/<name>-paper/`` at paper scale);
    the environment variable ``REGBENCH_REPORTS`` moves ``reports/`` (tests use it)."""
    root = Path(os.environ.get("REGBENCH_REPORTS") or ROOT / "reports")
    return root / (name if scale == "cpu" else f"{name}-{scale}")


def write_report(
    out_dir: Path,
    markdown: str,
    figures: Sequence[Path],
    parent_run_id: str | None,
    claims: dict | None = None,
) -> Path:
    """Write ``report.md`` (figures are already saved in ``out_dir``) and, when given,
    ``claims.json`` (every verdict with its per-seed values, machine-readable), and log
    everything under ``report/`` on the parent run. Returns the path of ``report.md``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "report.md"
    md.write_text(markdown)
    files = [md, *figures]
    if claims is not None:
        path = out_dir / "claims.json"
        path.write_text(json.dumps(claims, indent=1, allow_nan=True) + "\n")
        files.append(path)
    if parent_run_id:
        client = get_client()
        for path in files:
            client.log_artifact(parent_run_id, str(path), "report")
    return md

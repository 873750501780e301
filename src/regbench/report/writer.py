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
from regbench.report.plots import vector_copy  # noqa: E402
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
    ``claims.json`` (every verdict with its per-seed values, machine-readable, plus the
    ``build`` record of :func:`build_record`), and log everything under ``report/`` on
    the parent run, with the SVG copies of the figures. Each build's ``claims.json`` is
    also logged as ``report/history/<UTC time>-<commit>.json``: ``report/claims.json`` is
    replaced by the next build, the history copies stay, so the results site can show
    every commit's verdicts. Returns the path of ``report.md``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / "report.md"
    md.write_text(markdown)
    files = [md, *figures, *filter(None, map(vector_copy, figures))]
    history = None
    if claims is not None:
        claims = {**claims, "build": build_record(claims.get("experiment"))}
        path = out_dir / "claims.json"
        path.write_text(json.dumps(claims, indent=1, allow_nan=True) + "\n")
        files.append(path)
        stamp = claims["build"]["time"].replace("-", "").replace(":", "")
        history = out_dir / "history" / f"{stamp}-{claims['build']['commit'][:8]}.json"
        history.parent.mkdir(exist_ok=True)
        history.write_text(path.read_text())
    if parent_run_id:
        client = get_client()
        for path in files:
            client.log_artifact(parent_run_id, str(path), "report")
        if history is not None:
            client.log_artifact(parent_run_id, str(history), "report/history")
    return md


def build_record(experiment: str | None) -> dict:
    """When and from what this report was built: the UTC time, the checkout's commit and
    dirty flag and the package versions now, and the commits of the finished runs it
    read (``runs``: commit -> count; reruns reuse finished runs, so a report built at one
    commit may describe runs trained at another)."""
    from datetime import UTC, datetime

    from regbench.tracking import PARENT_TAG
    from regbench.tracking.lineage import environment_tags

    env = environment_tags()
    runs: dict[str, int] = {}
    client = get_client()
    exp = client.get_experiment_by_name(experiment) if experiment else None
    if exp is not None:
        page_token = None
        while True:
            page = client.search_runs(
                [exp.experiment_id], "attributes.status = 'FINISHED'", max_results=1000,
                page_token=page_token,
            )  # fmt: skip
            for r in page:
                if r.data.tags.get(PARENT_TAG):
                    commit = r.data.tags.get("git.commit", "unknown")
                    runs[commit] = runs.get(commit, 0) + 1
            page_token = page.token
            if not page_token:
                break
    return {
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "commit": env["git.commit"],
        "dirty": env["git.dirty"],
        "versions": {
            k.removeprefix("version."): v for k, v in env.items() if k.startswith("version.")
        },
        "runs": runs,
    }

"""A small real store for the site tests: ``two_inputs`` at tiny scale (the cheapest
reproduction: 12 direct runs), its ``regbench compare`` report and a second report build,
in a fresh MLflow store; then ``regbench site`` on it."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

TABLES = ("experiments", "experiment_tags", "runs", "tags", "params", "metrics", "inputs")


@dataclass
class SiteStore:
    root: Path
    mlruns: Path
    reports: Path
    site: Path
    before: dict  # store snapshots around the site build
    after: dict

    def env(self, mp: pytest.MonkeyPatch) -> None:
        """Point regbench at this store (for a test that reads it again)."""
        mp.setenv("REGBENCH_MLRUNS", str(self.mlruns))
        mp.setenv("REGBENCH_REPORTS", str(self.reports))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)


def snapshot(mlruns: Path) -> dict:
    """Everything a store holds: each table's rows (read only) and every artifact's bytes."""
    out = {}
    db = mlruns / "mlflow.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        for table in TABLES:
            rows = con.execute(f"SELECT * FROM {table}").fetchall()
            out[table] = sorted(map(repr, rows))
    for f in sorted((mlruns / "artifacts").rglob("*")):
        if f.is_file():
            out[str(f.relative_to(mlruns))] = hashlib.sha1(f.read_bytes()).hexdigest()
    return out


def build_store(root: Path) -> SiteStore:
    from regbench.cli import main

    s = SiteStore(root, root / "mlruns", root / "reports", root / "site", {}, {})
    with pytest.MonkeyPatch.context() as mp:
        s.env(mp)
        main(["reproduce", "two_inputs", "--scale", "tiny", "--n-jobs", "1"])
        main(["compare", "two_inputs"])
        main(["report", "two_inputs", "--scale", "tiny"])  # a second build: the history
        s.before = snapshot(s.mlruns)
        main(["site", "--out", str(s.site)])
        s.after = snapshot(s.mlruns)
    return s


def claims_json(s: SiteStore) -> dict:
    return json.loads((s.site / "r" / "two_inputs-tiny" / "claims.json").read_text())

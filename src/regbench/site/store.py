"""What the site shows, read from an MLflow store: only searches and artifact downloads,
nothing is written to the store.

- a reproduction is the runs tagged ``regbench.reproduction`` (the grid parents; a
  reproduction may have several, one per grid) with their experiment's child runs; its
  report is the newest ``report/claims.json`` among its parents, and every kept build of
  that file (``report/history/*.json``, plus the current one) is a :class:`Build`;
- a comparison is any run with a ``compare/report.md`` artifact (``regbench compare``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from regbench.report import REPRO_TAG
from regbench.tracking import ERROR_TAG, PARENT_TAG

SCALE_TAG = "regbench.scale"
ROLE_TAG = "sweep.role"
REPORT_DIR, COMPARE_DIR, HISTORY_DIR = "report", "compare", "report/history"


@dataclass
class Run:
    """One MLflow run, as plain values."""

    run_id: str
    name: str
    experiment_id: str
    status: str
    start_ms: int
    end_ms: int | None
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, float]

    @classmethod
    def of(cls, r) -> Run:
        return cls(
            r.info.run_id,
            r.info.run_name or r.info.run_id,
            r.info.experiment_id,
            r.info.status,
            int(r.info.start_time or 0),
            int(r.info.end_time) if r.info.end_time else None,
            dict(r.data.params),
            dict(r.data.tags),
            dict(r.data.metrics),
        )

    @property
    def parent(self) -> str | None:
        return self.tags.get(PARENT_TAG)

    @property
    def error(self) -> str:
        return self.tags.get(ERROR_TAG, "")

    @property
    def started(self) -> datetime:
        return datetime.fromtimestamp(self.start_ms / 1000, UTC)

    @property
    def wall_s(self) -> float | None:
        return (self.end_ms - self.start_ms) / 1000 if self.end_ms else None


@dataclass
class Build:
    """One build of a reproduction's ``claims.json``: its claims and, when the report
    writer recorded it, when and from which commit it was built and which commits
    trained the runs it read (``build``)."""

    parent: Run
    data: dict
    source: str  # the artifact path it was read from

    @property
    def record(self) -> dict:
        return self.data.get("build") or {}

    @property
    def time(self) -> datetime:
        """The build time; a report written before builds were recorded takes its
        parent run's end (or start) time."""
        stamp = self.record.get("time")
        if stamp:
            return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        ms = self.parent.end_ms or self.parent.start_ms
        return datetime.fromtimestamp(ms / 1000, UTC)

    @property
    def claims(self) -> list[dict]:
        return list(self.data.get("claims") or [])

    def key(self) -> tuple:
        """Equal for two copies of the same build (the history copy and the current file)."""
        return (self.parent.run_id, self.record.get("time"), json.dumps(self.claims, default=str))


@dataclass
class Reproduction:
    name: str
    scale: str
    experiment: str
    parents: list[Run]
    children: list[Run]
    report: Build | None = None
    folder: Path | None = None  # the newest report's artifacts, downloaded
    builds: list[Build] = field(default_factory=list)  # oldest first

    page: str = ""  # its folder on the site: <name>-<scale> (read_store makes it unique)

    @property
    def slug(self) -> str:
        return self.page or f"{self.name}-{self.scale}"

    @property
    def finished(self) -> list[Run]:
        return [r for r in self.children if r.status == "FINISHED"]

    @property
    def failed(self) -> list[Run]:
        return [r for r in self.children if r.status in ("FAILED", "KILLED")]


@dataclass
class Comparison:
    parent: Run
    experiment: str
    folder: Path  # the run's compare/ artifacts, downloaded


@dataclass
class StoreView:
    uri: str
    reproductions: list[Reproduction]
    comparisons: list[Comparison]


def _search(client, exp_ids: list[str], query: str = "") -> list[Run]:
    out, token = [], None
    while True:
        page = client.search_runs(exp_ids, query, max_results=1000, page_token=token)
        out.extend(Run.of(r) for r in page)
        token = page.token
        if not token:
            return out


def _load_json(path: Path) -> dict | None:
    """A claims file, or None when it is not one (a truncated or foreign file)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("claims"), list) else None


def _artifacts(client, run_id: str, path: str) -> list[str]:
    try:
        return [a.path for a in client.list_artifacts(run_id, path)]
    except Exception:  # an artifact store that is gone or unreadable: nothing to show
        return []


def _builds(client, parent: Run, work: Path) -> tuple[Path | None, Build | None, list[Build]]:
    """The parent's report folder (downloaded), its current build and its history."""
    if f"{REPORT_DIR}/claims.json" not in _artifacts(client, parent.run_id, REPORT_DIR):
        return None, None, []
    folder = Path(client.download_artifacts(parent.run_id, REPORT_DIR, str(work / parent.run_id)))
    data = _load_json(folder / "claims.json")
    if data is None:
        return None, None, []
    current = Build(parent, data, f"{REPORT_DIR}/claims.json")
    history = []
    for path in sorted((folder / "history").glob("*.json")):
        old = _load_json(path)
        if old is not None:
            history.append(Build(parent, old, f"{HISTORY_DIR}/{path.name}"))
    return folder, current, history


def _unique(builds: Iterable[Build]) -> list[Build]:
    seen, out = set(), []
    for b in sorted(builds, key=lambda b: b.time):
        if b.key() not in seen:
            seen.add(b.key())
            out.append(b)
    return out


def read_store(client, uri: str, work: Path) -> StoreView:
    """Every reproduction and comparison in the store; artifacts go to ``work``."""
    experiments = {e.experiment_id: e.name for e in client.search_experiments()}
    exp_ids = list(experiments)
    if not exp_ids:
        return StoreView(uri, [], [])
    tagged = _search(client, exp_ids, f"tags.`{REPRO_TAG}` LIKE '%'")
    by_key: dict[tuple[str, str, str], list[Run]] = {}
    for run in tagged:
        key = (run.tags[REPRO_TAG], run.tags.get(SCALE_TAG, "cpu"), run.experiment_id)
        by_key.setdefault(key, []).append(run)
    reproductions = []
    for (name, scale, exp_id), parents in by_key.items():
        children = [r for r in _search(client, [exp_id]) if r.parent]
        repro = Reproduction(name, scale, experiments[exp_id], parents, children)
        builds = []
        for parent in parents:
            folder, current, history = _builds(client, parent, work)
            if current is None:
                continue
            builds += [*history, current]
            if repro.report is None or current.time > repro.report.time:
                repro.report, repro.folder = current, folder
        repro.builds = _unique(builds)
        reproductions.append(repro)
    reproductions.sort(key=lambda r: (r.name, r.scale, r.experiment))
    pages: set[str] = set()
    for repro in reproductions:  # the same name and scale in two experiments: two pages
        repro.page = repro.slug if repro.slug not in pages else f"{repro.slug}-{repro.experiment}"
        pages.add(repro.page)
    # Parents of every kind (reproductions, studies, multiruns) can hold a comparison.
    parents = {r.run_id: r for r in tagged}
    parents |= {r.run_id: r for r in _search(client, exp_ids, f"tags.`{ROLE_TAG}` = 'parent'")}
    comparisons = []
    for run in sorted(parents.values(), key=lambda r: (r.name, r.run_id)):
        if f"{COMPARE_DIR}/report.md" in _artifacts(client, run.run_id, COMPARE_DIR):
            dst = work / "compare" / run.run_id
            folder = Path(client.download_artifacts(run.run_id, COMPARE_DIR, str(dst)))
            comparisons.append(Comparison(run, experiments[run.experiment_id], folder))
    return StoreView(uri, reproductions, comparisons)


def finite(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)

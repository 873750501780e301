"""Reading a reproduction's runs back from MLflow (no training).

A record is one finished child run: its flattened config (params), final metrics and
tags. When a grid point and seed were run more than once (a rerun after a change), the
newest finished run wins, so a report always describes one run per (point, seed).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

from regbench.tracking import PARENT_TAG, get_client

REPRO_TAG = "regbench.reproduction"  # set on the parent run of a reproduction's grid


@dataclass
class RunRecord:
    run_id: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str] = field(default_factory=dict)
    start_time: int = 0

    def p(self, key: str, cast: Callable = str, default=None):
        """A param cast to ``cast`` (``float``, ``int``, ...); ``default`` when absent."""
        if key not in self.params:
            if default is None:
                raise KeyError(f"run {self.run_id} has no param {key!r}")
            return default
        return cast(self.params[key])

    @property
    def seed(self) -> int:
        return int(self.params["seed"])


def _all_runs(experiment: str) -> list:
    client = get_client()
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    out, token = [], None
    while True:
        page = client.search_runs([exp.experiment_id], max_results=1000, page_token=token)
        out.extend(page)
        token = page.token
        if not token:
            return out


def load_runs(
    experiment: str, key: Callable[[RunRecord], Hashable] | None = None
) -> list[RunRecord]:
    """Finished runs that carry a config (children, not grid parents), one per ``key``
    (default: all params but run-specific ones), newest first wins, sorted by run id of
    the kept runs' keys for a stable order."""
    records = []
    for r in _all_runs(experiment):
        if r.info.status != "FINISHED" or "seed" not in r.data.params:
            continue
        records.append(
            RunRecord(
                r.info.run_id,
                dict(r.data.params),
                dict(r.data.metrics),
                dict(r.data.tags),
                int(r.info.start_time or 0),
            )
        )
    records.sort(key=lambda rec: (rec.start_time, rec.run_id), reverse=True)
    kept: dict[Hashable, RunRecord] = {}
    for rec in records:
        k = key(rec) if key else tuple(sorted(rec.params.items()))
        kept.setdefault(k, rec)
    return sorted(kept.values(), key=lambda rec: (rec.start_time, rec.run_id))


def find_parent(experiment: str, children: Sequence[RunRecord] = ()) -> str | None:
    """The grid's parent run: the newest run tagged as a reproduction parent, else the
    parent of the newest child."""
    runs = _all_runs(experiment)
    parents = [
        r for r in runs if r.data.tags.get(REPRO_TAG) or r.data.tags.get("sweep.role") == "parent"
    ]
    if parents:
        return max(parents, key=lambda r: (r.info.start_time or 0, r.info.run_id)).info.run_id
    for rec in sorted(children, key=lambda c: c.start_time, reverse=True):
        if rec.tags.get(PARENT_TAG):
            return rec.tags[PARENT_TAG]
    return None


def history(run_id: str, key: str) -> list[tuple[int, float]]:
    """``[(step, value), ...]`` of a metric, sorted by step."""
    hist = get_client().get_metric_history(run_id, key)
    return sorted((int(m.step), float(m.value)) for m in hist)

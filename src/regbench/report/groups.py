"""Runs of a sweep grouped by configuration, for ``regbench compare``.

A parent run (a ``regbench train -m`` grid, an Optuna sweep, a reproduction's grid) is
found by run id, run name, sweep id, study name or reproduction name. Its FINISHED child
runs are grouped by the settings that vary across them (params that differ, less the
seed). Each final metric is summarized over seeds as the mean with its 95% Student-t
interval; a configuration is compared with a baseline by the per-seed paired
differences on the seeds both share, with their own 95% t-interval (arms run on the same
seed share data order and initialisation draws, so the difference varies less than
either arm).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from regbench.errors import ConfigError
from regbench.report.claims import paired_by_seed
from regbench.report.runs import RunRecord
from regbench.report.stats import Summary, mean_ci
from regbench.tracking import PARENT_TAG

#: params that identify a run (seed) or follow from its config (model.params), not settings
RUN_SPECIFIC = ("seed", "model.params")
UNSET = "(unset)"
#: final metrics shown on stdout when present in every run (all metrics go to report.md)
MAIN_METRICS = ("test/acc", "test/loss", "val/acc", "val/loss", "time/fit_s")
#: time metrics a batched run logs as its share of its group's wall time (the group's time
#: over its models, ``regbench.batched.runs.Shares``): one number for every model of a group
SHARED_TIME = ("time/fit_s", "time/epoch_s", "time/to_target_s")
EXEC_TAG = "regbench.exec"  # "batched" or "single", set on every training run
SHARED_NOTE = (
    "† Batched runs log their share of their group's wall time (the group's time over its "
    "models), the same number for every model of a group: not a per-seed measurement, so "
    "no interval is shown, and a difference between configurations includes what each "
    "group paid alone (the first group also pays the process's warm-up). Time models one "
    "by one (`REGBENCH_BATCHED=0`) to measure them."
)
_SEARCH_TAGS = ("sweep.id", "sweep.study", "regbench.reproduction")


@dataclass
class Group:
    """One configuration: its varied settings and one run per seed; ``name`` (when set,
    e.g. an arm's label) replaces the settings in tables and legends."""

    settings: dict[str, str]
    runs: dict[int, RunRecord] = field(default_factory=dict)
    name: str = ""
    arm: str = ""  # a reproduction's arm label, and the settings that vary within arms
    within: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        return ", ".join(f"{k}={v}" for k, v in self.settings.items()) or "(all runs)"

    def values(self, metric: str) -> dict[int, float]:
        """Per-seed final values; a non-finite one (a diverged run) is left out, and the
        count shown beside the summary then says so."""
        out = {s: r.metrics.get(metric, math.nan) for s, r in self.runs.items()}
        return {s: v for s, v in out.items() if math.isfinite(v)}


@dataclass(frozen=True)
class Arms:
    """A reproduction's arms, as it declares them for ``regbench compare``: the param
    whose value names an arm (``vs_placement``), a short label per value, and the
    baseline arm's value. Settings that follow from the arm (its layer order, dropout
    kind...) leave the labels; settings that vary within an arm (a rate) stay."""

    key: str
    labels: dict[str, str] = field(default_factory=dict)
    baseline: str | None = None

    def label(self, value: str) -> str:
        return self.labels.get(value, f"{self.key}={value}")


def name_arms(groups: Sequence[Group], arms: Arms) -> list[Group]:
    """The groups in the arms' declared order, each named by its arm plus the settings
    that vary within an arm."""
    if not groups or arms.key not in groups[0].settings:
        return list(groups)
    within = [
        k
        for k in groups[0].settings
        if k != arms.key
        and any(
            len({g.settings[k] for g in groups if g.settings[arms.key] == v}) > 1
            for v in {g.settings[arms.key] for g in groups}
        )
    ]

    def varies(k: str, arm: str) -> bool:
        return len({g.settings[k] for g in groups if g.settings[arms.key] == arm}) > 1

    for g in groups:
        g.arm = arms.label(g.settings[arms.key])
        g.within = {k: g.settings[k] for k in within}
        # a setting is named where it varies within this arm (no dropout has no rate)
        rest = [f"{k.rsplit('.', 1)[-1]}={v}" for k, v in g.within.items()
                if varies(k, g.settings[arms.key])]  # fmt: skip
        g.name = ", ".join([g.arm, *rest])
    rank = {v: i for i, v in enumerate(arms.labels)}

    def order(g: Group) -> tuple:
        inner = [g.settings[k] for k in within]
        return rank.get(g.settings[arms.key], len(rank)), [_numeric(v) for v in inner]

    return sorted(groups, key=order)


def _numeric(v: str) -> tuple:
    """Sort key: numbers by value (4 < 16 < 256), then text."""
    try:
        return (0, float(v), "")
    except ValueError:
        return (1, 0.0, v)


def arm_baseline(groups: Sequence[Group], arms: Arms) -> int:
    """Index of the first group of the baseline arm (0 when it has none)."""
    for i, g in enumerate(groups):
        if arms.baseline is not None and g.settings.get(arms.key) == arms.baseline:
            return i
    return 0


def _search(client, exp_ids: list[str], query: str) -> list:
    out, token = [], None
    while True:
        page = client.search_runs(exp_ids, query, max_results=1000, page_token=token)
        out.extend(page)
        token = page.token
        if not token:
            return out


def find_parent_run(client, name: str, experiment: str | None = None):
    """The newest run whose id, name, sweep id, study name or reproduction name is
    ``name`` (in ``experiment`` if given, else in every experiment)."""
    if re.fullmatch(r"[0-9a-f]{32}", name):
        try:
            return client.get_run(name)
        except Exception:  # not a run id after all: fall through to the name search
            pass
    if experiment is not None:
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            raise ConfigError(f"regbench compare: --experiment={experiment!r} does not exist")
        exp_ids = [exp.experiment_id]
    else:
        exp_ids = [e.experiment_id for e in client.search_experiments()]
    quoted = name.replace("'", "\\'")
    queries = [f"attributes.run_name = '{quoted}'"]
    queries += [f"tags.`{t}` = '{quoted}'" for t in _SEARCH_TAGS]
    found = []
    for q in queries:
        found = [r for r in _search(client, exp_ids, q) if not r.data.tags.get(PARENT_TAG)]
        if found:
            break
    if not found:
        where = f"experiment {experiment!r}" if experiment else "any experiment"
        raise ConfigError(
            f"regbench compare: no parent run named {name!r} in {where} (tried run id, "
            f"run name and the tags {', '.join(_SEARCH_TAGS)})"
        )
    return max(found, key=lambda r: (r.info.start_time or 0, r.info.run_id))


def finished_children(client, parent) -> list[RunRecord]:
    """FINISHED child runs that carry a seed; the newest run per (params) wins."""
    pid = parent.info.run_id
    query = f"tags.`{PARENT_TAG}` = '{pid}' and attributes.status = 'FINISHED'"
    runs = _search(client, [parent.info.experiment_id], query)
    records = [
        RunRecord(
            r.info.run_id,
            dict(r.data.params),
            dict(r.data.metrics),
            dict(r.data.tags),
            int(r.info.start_time or 0),
        )
        for r in runs
        if "seed" in r.data.params
    ]
    if not records:
        raise ConfigError(
            f"regbench compare: parent run {parent.info.run_name!r} ({pid}) has no FINISHED "
            "child runs with a seed param"
        )
    records.sort(key=lambda rec: (rec.start_time, rec.run_id))
    return records


def varied_keys(records: Sequence[RunRecord]) -> list[str]:
    """Params whose value differs across runs (a missing param counts as a value), less
    the seed, the parameter count, and the details of a kept key that add nothing:
    ``reg.l1.kind`` goes once ``reg`` (``[l1]``, ``[]``) is kept, as it follows from it."""
    keys = sorted({k for r in records for k in r.params} - set(RUN_SPECIFIC))
    varying = [k for k in keys if len({r.params.get(k, UNSET) for r in records}) > 1]
    varying.sort(key=lambda k: (k.count("."), k))  # coarser keys first
    kept: list[str] = []
    for k in varying:
        before = {tuple(r.params.get(x, UNSET) for x in kept) for r in records}
        after = {tuple(r.params.get(x, UNSET) for x in [*kept, k]) for r in records}
        nested = any(k.startswith(f"{x}.") for x in kept)
        if not nested or len(after) > len(before):
            kept.append(k)
    return sorted(kept, key=keys.index)


def group_runs(records: Sequence[RunRecord]) -> list[Group]:
    """Groups in order of their first run (the grid's order); newest run per seed wins."""
    keys = varied_keys(records)
    groups: dict[tuple, Group] = {}
    for rec in records:  # oldest first, so a later rerun replaces its seed
        settings = {k: rec.params.get(k, UNSET) for k in keys}
        g = groups.setdefault(tuple(settings.values()), Group(settings))
        g.runs[rec.seed] = rec
    return list(groups.values())


def _same(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return float(a) == float(b)
    except ValueError:
        return a.replace(" ", "") == b.replace(" ", "")


def pick_baseline(groups: Sequence[Group], spec: str | None) -> int:
    """Index of the baseline group: the first one matching every ``key=value`` of
    ``spec`` (comma-free pairs joined by ``&``), or 0 when no spec is given."""
    if not spec:
        return 0
    pairs = []
    for part in spec.split("&"):
        key, eq, value = part.partition("=")
        if not eq:
            raise ConfigError(f"regbench compare: --baseline={spec!r}; expected key=value")
        pairs.append((key.strip(), value.strip()))
    for key, _ in pairs:
        if key not in groups[0].settings:
            varied = ", ".join(groups[0].settings) or "none"
            raise ConfigError(
                f"regbench compare: --baseline key {key!r} is not a varied setting; "
                f"varied: {varied}"
            )
    for i, g in enumerate(groups):
        if all(_same(g.settings[k], v) for k, v in pairs):
            return i
    key = pairs[0][0]
    seen = sorted({g.settings[key] for g in groups})
    raise ConfigError(
        f"regbench compare: --baseline={spec!r} matches no configuration; {key} has "
        f"values: {', '.join(seen)}"
    )


def common_metrics(groups: Sequence[Group]) -> list[str]:
    """Final metrics present in every run, sorted."""
    sets = [set(r.metrics) for g in groups for r in g.runs.values()]
    return sorted(set.intersection(*sets)) if sets else []


def summarize(group: Group, metric: str) -> Summary | None:
    vals = list(group.values(metric).values())
    return mean_ci(vals) if vals else None


def paired_diff(group: Group, base: Group, metric: str) -> Summary | None:
    """Mean and 95% t-interval of the per-seed differences ``group - base`` on the seeds
    both have; None without a shared seed."""
    diffs = paired_by_seed(group.values(metric), base.values(metric))
    return mean_ci(diffs) if diffs else None


def shared_metric(groups: Sequence[Group], metric: str) -> bool:
    """Whether ``metric`` is shared within batched groups (a time share) in these runs."""
    return metric in SHARED_TIME and any(
        r.tags.get(EXEC_TAG) == "batched" for g in groups for r in g.runs.values()
    )


def interval_shown(s: Summary | None, shared: bool = False) -> bool:
    """Whether ``s`` has an interval worth printing: two or more seeds, some spread, and
    not a number shared within batched groups (a zero-width interval reads as certainty)."""
    return s is not None and s.n > 1 and not shared and not no_spread(s)


def no_spread(s: Summary) -> bool:
    """Equal values up to float rounding: differences of equal accuracies (0.2833 - 0.25
    and 0.3167 - 0.2833) differ in the last bits, and their 1e-17 spread printed as a
    zero-width interval [+0.0333, +0.0333] (seen on the newcomer's walk)."""
    return s.sd <= 1e-9 * max(1.0, abs(s.mean))


def fmt_summary(
    s: Summary | None, digits: int = 4, runs: int | None = None, shared: bool = False
) -> str:
    """``mean ± half``; ``(n=k)`` when fewer than ``runs`` seeds had a finite value; no
    interval for a batched group's time share (``shared``, marked †) or equal values."""
    if s is None:
        return "no finite value"
    short = f" (n={s.n})" if runs is not None and s.n < runs else ""
    if shared:
        return f"{s.mean:.{digits}f} (batched share†){short}"
    if s.n < 2 or math.isnan(s.half):
        return f"{s.mean:.{digits}f} (n=1)"
    if no_spread(s):
        return f"{s.mean:.{digits}f} (equal on all {s.n} seeds){short}"
    return f"{s.mean:.{digits}f} ± {s.half:.{digits}f}{short}"


def fmt_diff(s: Summary | None, digits: int = 4, shared: bool = False) -> str:
    if s is None:
        return "no shared seed"
    if shared:
        return f"{s.mean:+.{digits}f} (batched shares†: no interval)"
    if s.n < 2 or math.isnan(s.half):
        return f"{s.mean:+.{digits}f} (1 seed)"
    if no_spread(s):
        return f"{s.mean:+.{digits}f} (the same on all {s.n} seeds: no interval)"
    return f"{s.mean:+.{digits}f} [{s.lo:+.{digits}f}, {s.hi:+.{digits}f}]"

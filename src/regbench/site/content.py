"""What each page says, from what :mod:`regbench.site.store` read: verdict counts,
claim rows, provenance, the per-seed CSV and the history of every claim.

A claim's verdict on the site is its family-wise verdict (``family_status``, Holm's
correction over the report's claims) where the report has one, else its own ``status``.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from regbench.site.store import Build, Reproduction, Run, finite

ROLES = ("finding", "folk", "check")
ROLE_NAMES = {"finding": "findings", "folk": "folk claims", "check": "checks"}
STATUSES = ("SUPPORTED", "REFUTED", "INCONCLUSIVE")
CSV_COLUMNS = ("reproduction", "scale", "claim", "role", "kind", "statistic", "index", "seed",
               "value", "verdict")  # fmt: skip


def verdict(claim: dict) -> str:
    return str(claim.get("family_status") or claim.get("status") or "INCONCLUSIVE")


def counts(data: dict) -> dict[str, dict[str, int]]:
    """Verdict counts by role: the report's own ``counts`` where it has them in that
    shape ({role: {status: n}}), else counted here from the claims' verdicts."""
    given = data.get("counts")
    if isinstance(given, dict) and all(
        isinstance(v, dict) and all(isinstance(n, int) for n in v.values()) for v in given.values()
    ):
        return {role: {s: int(given.get(role, {}).get(s, 0)) for s in STATUSES} for role in ROLES}
    out = {role: dict.fromkeys(STATUSES, 0) for role in ROLES}
    for c in data.get("claims") or []:
        role = c.get("role") if c.get("role") in ROLES else "finding"
        status = verdict(c)
        out[role][status] = out[role].get(status, 0) + 1
    return out


def short(commit: str) -> str:
    return commit[:8] if commit and commit != "unknown" else "unknown"


def when(run_or_build) -> str:
    t = run_or_build.started if isinstance(run_or_build, Run) else run_or_build.time
    return t.strftime("%Y-%m-%d %H:%M UTC")


def _common(runs: Iterable[Run], tag: str) -> str:
    """The value of a tag over runs: one value, or each value with its count."""
    seen = Counter(r.tags[tag] for r in runs if tag in r.tags)
    if not seen:
        return ""
    if len(seen) == 1:
        return next(iter(seen))
    return ", ".join(f"{v} ({n} runs)" for v, n in seen.most_common())


def seeds(repro: Reproduction) -> list[int]:
    """The seeds of its finished runs (``seed`` param), else the most per-seed values
    any claim has (a report whose runs are not in the store)."""
    found = set()
    for r in repro.finished:
        try:
            found.add(int(r.params["seed"]))
        except (KeyError, ValueError):
            continue
    if found:
        return sorted(found)
    n = max((len(c.get("values") or []) for c in _claims(repro)), default=0)
    return list(range(n))


def _claims(repro: Reproduction) -> list[dict]:
    return repro.report.claims if repro.report else []


def run_commits(repro: Reproduction) -> Counter:
    """Commits of the finished runs: from the runs' tags, else from the report's build
    record (runs without lineage tags, e.g. direct runs of older versions)."""
    found = Counter(r.tags["git.commit"] for r in repro.finished if "git.commit" in r.tags)
    if not found and repro.report:
        found = Counter(repro.report.record.get("runs") or {})
        found.pop("unknown", None)
        if not found and repro.report.record.get("commit"):
            found[repro.report.record["commit"]] = 0
    return found


def command(repro: Reproduction) -> str:
    n = len(seeds(repro))
    extra = f" --seeds {n}" if n else ""
    return f"regbench reproduce {repro.name} --scale {repro.scale}{extra}"


@dataclass
class Fact:
    label: str
    value: str


def provenance(repro: Reproduction) -> list[Fact]:
    """Where the numbers come from: commits, dirty flags, packages, machine, cost."""
    runs = repro.finished
    rec = repro.report.record if repro.report else {}
    commits = run_commits(repro)
    several = len(commits) > 1
    trained = [f"{c} ({n} runs)" if several else c for c, n in commits.most_common()]
    facts = [
        Fact("trained at commit", ", ".join(trained) or "not recorded"),
        Fact("uncommitted changes (git.dirty)", _common(runs, "git.dirty") or "not recorded"),
    ]
    if rec:
        dirty = " (with uncommitted changes)" if rec.get("dirty") == "true" else ""
        facts.append(
            Fact("report built", f"{when(repro.report)} at commit {rec.get('commit')}{dirty}")
        )
    versions = sorted({k for r in runs for k in r.tags if k.startswith("version.")})
    for key in versions:
        facts.append(Fact(key.removeprefix("version."), _common(runs, key)))
    if not versions and rec.get("versions"):
        for k, v in sorted(rec["versions"].items()):
            facts.append(Fact(f"{k} (at report build)", str(v)))
    for key, label in (
        ("device", "device"),
        ("machine.cpu", "CPU"),
        ("machine.gpu", "GPU"),
        ("machine.cores", "logical cores"),
        ("machine.threads", "torch threads per run"),
        ("regbench.exec", "execution"),
    ):
        value = _common(runs, key)
        if value:
            facts.append(Fact(label, value))
    walls = [p.wall_s for p in repro.parents if p.wall_s is not None]
    if walls:
        facts.append(Fact("wall time of the grids (parent runs)", f"{sum(walls):.0f} s"))
    fit = [r.metrics["time/fit_s"] for r in runs if finite(r.metrics.get("time/fit_s"))]
    if fit:
        facts.append(Fact("training time, summed over runs (time/fit_s)", f"{sum(fit):.0f} s"))
    facts.append(Fact("runs", run_counts(repro)))
    facts.append(Fact("experiment", repro.experiment))
    parents = ", ".join(p.run_id for p in repro.parents)
    facts.append(Fact("parent runs", parents))
    return facts


def run_counts(repro: Reproduction) -> str:
    seen = Counter(r.status for r in repro.children)
    return ", ".join(f"{n} {s}" for s, n in sorted(seen.items())) or "none in the store"


def rerun(repro: Reproduction) -> str:
    """The commands that rerun it at the commit its runs were trained at."""
    commits = run_commits(repro)
    lines = []
    if commits:
        lines.append(f"git checkout {commits.most_common(1)[0][0]}")
    lines.append(f"uv run {command(repro)}")
    return "\n".join(lines)


def values_csv(repro: Reproduction) -> str:
    """Every claim's per-seed values, one row per value in the report's order; the seed
    column is filled where the claim names its seeds (a ``seeds`` list as long as its
    values), else left empty rather than guessed."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for c in _claims(repro):
        vals = c.get("values") or []
        named = c.get("seeds") if len(c.get("seeds") or []) == len(vals) else None
        for i, v in enumerate(vals):
            seed = named[i] if named else ""
            w.writerow(
                [
                    repro.name,
                    repro.scale,
                    c.get("key"),
                    c.get("role"),
                    c.get("kind"),
                    c.get("statistic"),
                    i,
                    seed,
                    repr(float(v)),
                    verdict(c),
                ]
            )
    return buf.getvalue()


def _fmt(x, claim: dict) -> str:
    if not finite(x):
        return str(x)
    scale, digits = float(claim.get("scale") or 1.0), int(claim.get("digits") or 3)
    return f"{x * scale:.{digits}f}{claim.get('unit') or ''}"


def extras(claim: dict) -> list[Fact]:
    """What a report adds beyond the verdict, where its claims.json has it (reports of
    earlier versions do not): the effect size, the p-value of the verdict's side, related
    claims (read off the same curve, not independent evidence), the family-wise note.
    Seeds for 80% power go in the "seeds needed" column."""
    out = []
    effect = claim.get("effect")
    if finite(effect):
        out.append(Fact("effect", f"{claim.get('effect_kind') or 'd'} = {effect:+.2f}"))
    if finite(claim.get("p_value")):
        out.append(Fact("p", f"p = {claim['p_value']:.3g}"))
    if claim.get("related"):
        out.append(Fact("related", ", ".join(map(str, claim["related"]))))
    if claim.get("family_note"):
        out.append(Fact("family", str(claim["family_note"])))
    return out


def interval(claim: dict) -> dict | None:
    """Positions (0..100 %) of the interval, the mean and the threshold band on a common
    axis, for the small bar drawn beside the estimate; None without an interval."""
    est = claim.get("estimate") or {}
    lo, hi, mean = est.get("lo"), est.get("hi"), est.get("mean")
    t, d = claim.get("threshold"), float(claim.get("delta") or 0.0)
    if claim.get("kind") == "exact":
        vals = [v for v in claim.get("values") or [] if finite(v)]
        lo, hi = (min(vals), max(vals)) if vals else (None, None)
    if not all(finite(x) for x in (lo, hi, mean, t)):
        return None
    ends = [lo, hi, mean, t - d, t + d]
    a, b = min(ends), max(ends)
    pad = (b - a) * 0.08 or max(abs(a), 1e-12) * 0.1
    a, b = a - pad, b + pad

    def pos(x: float) -> float:
        return round(100 * (x - a) / (b - a), 2)

    return {
        "lo": pos(lo),
        "hi": pos(hi),
        "mean": pos(mean),
        "t_lo": pos(t - d),
        "t_hi": pos(t + d),
        "title": f"interval {_fmt(lo, claim)} .. {_fmt(hi, claim)}, "
        f"threshold {claim.get('threshold_text', '')}",
    }


def history_table(repro_builds: Sequence[Build]) -> dict:
    """For one reproduction and scale: a column per build (consecutive builds with the
    same runs and verdicts merged, with their count), a row per claim key with its
    verdict and estimate per column; ``flip`` marks a verdict that differs from the
    claim's previous column."""
    columns: list[dict] = []
    for b in repro_builds:
        runs = {k: v for k, v in (b.record.get("runs") or {}).items() if k != "unknown"}
        cells = {c.get("key"): c for c in b.claims}
        sig = (
            tuple(sorted(runs)),
            tuple((k, verdict(c), c.get("estimate_text")) for k, c in cells.items()),
        )
        if columns and columns[-1]["sig"] == sig:
            columns[-1]["times"] += 1
            columns[-1]["last"] = when(b)
            continue
        columns.append(
            {
                "sig": sig,
                "first": when(b),
                "last": when(b),
                "times": 1,
                "cells": cells,
                "runs": [short(c) for c in sorted(runs)],
                "built": short(b.record.get("commit", "")) if b.record else "",
                "dirty": b.record.get("dirty") == "true",
            }
        )
    keys: list[str] = []
    texts: dict[str, str] = {}
    for col in columns:
        for k, c in col["cells"].items():
            if k not in texts:
                keys.append(k)
                texts[k] = c.get("text", k)
    rows = []
    for k in keys:
        cells, prev = [], None
        for col in columns:
            c = col["cells"].get(k)
            if c is None:
                cells.append(None)
                continue
            v = verdict(c)
            cells.append(
                {
                    "verdict": v,
                    "estimate": c.get("estimate_text", ""),
                    "flip": prev is not None and v != prev,
                }
            )
            prev = v
        rows.append(
            {
                "key": k,
                "text": texts[k],
                "cells": cells,
                "flips": sum(bool(c and c["flip"]) for c in cells),
            }
        )
    return {"columns": columns, "rows": rows, "flips": sum(r["flips"] for r in rows)}

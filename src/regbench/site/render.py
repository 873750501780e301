"""Writing the site: Jinja2 templates (``templates/``) filled from
:mod:`regbench.site.content`, figures copied as files, relative links only, so the folder
reads from ``file://`` or any static server.

    index.html            every reproduction (newest report per scale), comparisons
    history.html          every claim's verdict per report build
    r/<name>-<scale>/     index.html, values.csv, the report's figures and files
    c/<run name>/         index.html, the comparison's figures and summary.json
    style.css, site.js
"""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

from regbench.site import content
from regbench.site.markdown import blocks, render_block, split_row
from regbench.site.store import Comparison, Reproduction, StoreView

FIGURES = (".svg", ".png")
ASSETS = ("style.css", "site.js")
#: first header cells of report.md's claims tables (the checks get their own table)
CLAIMS = ("claim", "check")


def environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("regbench.site", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["role_names"] = content.ROLE_NAMES
    return env


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.") or "run"


def _copy_figures(src: Path | None, dst: Path) -> dict[str, str]:
    """Copy a report folder's figures (and files worth linking) into ``dst``; returns
    {name in report.md: file shown}: the SVG where the writer saved one, else the PNG."""
    dst.mkdir(parents=True, exist_ok=True)
    shown: dict[str, str] = {}
    if src is None or not src.is_dir():
        return shown
    for f in sorted(src.iterdir()):
        if f.is_file() and f.suffix in (*FIGURES, ".json", ".md"):
            shutil.copyfile(f, dst / f.name)
    for f in sorted(src.iterdir()):
        if f.suffix == ".png":
            svg = f.with_suffix(".svg")
            shown[f.name] = svg.name if svg.is_file() else f.name
        elif f.suffix == ".svg" and f.with_suffix(".png").name not in shown:
            shown.setdefault(f.name, f.name)
    return shown


def _claims_section(bs: list[tuple[str, list[str]]]) -> range:
    """The blocks of report.md's claims section, which the page shows as its own table:
    from the "Claims" heading (or the first claims table) through the last table whose
    first column is a claim (a report may split it by role, with sub-headings and a count
    line between)."""
    tables = [i for i, (k, lines) in enumerate(bs) if k == "table" and _first_cell(lines) in CLAIMS]
    if not tables:
        return range(0)
    heads = [
        i
        for i, (k, lines) in enumerate(bs[: tables[0]])
        if k == "heading"
        and lines[0].startswith("## ")
        and lines[0][3:].lower().startswith("claims")
    ]
    return range(heads[0] if heads else tables[0], tables[-1] + 1)


def _first_cell(lines: list[str]) -> str:
    return split_row(lines[0])[0].strip().lower()


def report_body(text: str, title: str, shown: dict[str, str]) -> tuple[str, set[str]]:
    """``report.md`` as HTML without what the page shows itself (the title heading, the
    one-line claim, the claims section); returns the HTML and the figures it shows."""
    used: set[str] = set()

    def resolve(src: str) -> str | None:
        name = src.rsplit("/", 1)[-1]
        if name in shown:
            used.add(shown[name])
            return shown[name]
        return None  # a figure that is not in the store: leave it out, no broken image

    bs = blocks(text)
    skip = _claims_section(bs)
    parts = []
    for i, (kind, lines) in enumerate(bs):
        joined = " ".join(line.strip() for line in lines)
        if i in skip or (i == 0 and kind == "heading" and lines[0].startswith("# ")):
            continue
        if i < 3 and kind == "paragraph" and joined == title.strip():
            continue
        parts.append(render_block(kind, lines, resolve))
    return "\n".join(parts), used


def _common(view: StoreView) -> dict:
    return {"uri": view.uri, "built": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}


def _needed(c: dict) -> str:
    """The seeds the claim's verdict needs, and for 80% power where the report says: at
    the family-wise level where the claim is in Holm's family (each test at alpha/m, so
    more seeds than the claim's own note, which is at alpha, says: named as such)."""
    if c.get("kind") == "exact":
        return "exact"
    need = f"{c.get('seeds_required') or c.get('min_seeds', '')}"
    if power := c.get("seeds_80_family"):
        return f"{need}; {power} for 80% power family-wise (Holm)"
    power = c.get("seeds_80")
    return need + (f"; {power} for 80% power" if power else "")


def _claim_rows(data: dict) -> list[dict]:
    rows = []
    for c in data.get("claims") or []:
        est = c.get("estimate") or {}
        n = est.get("n", len(c.get("values") or []))
        rows.append(
            {
                "key": slug(str(c.get("key", ""))),
                "verdict": content.verdict(c),
                "own": c.get("status"),
                "text": c.get("text", ""),
                "note": c.get("note", ""),
                "role": c.get("role", "finding"),
                "role_reason": c.get("role_reason", ""),
                "kind": c.get("kind", ""),
                "rule": c.get("rule", ""),
                "statistic": c.get("statistic", ""),
                "estimate": c.get("estimate_text", ""),
                "threshold": c.get("threshold_text", ""),
                "rationale": c.get("rationale", ""),
                "n": f"{n} (exact)" if c.get("kind") == "exact" else f"{n}",
                "needed": _needed(c),
                "bar": content.interval(c),
                "extras": content.extras(c),
            }
        )
    return rows


def _summary(repro: Reproduction, href: str) -> dict:
    data = repro.report.data if repro.report else {}
    commits = content.run_commits(repro)
    seeds = content.seeds(repro)
    dirty = any(r.tags.get("git.dirty") == "true" for r in repro.finished)
    when = content.when(repro.report) if repro.report else "—"
    runs_started = [r.started for r in repro.finished]
    if runs_started:  # when its runs trained (a report can be rebuilt later)
        when = max(runs_started).strftime("%Y-%m-%d %H:%M UTC")
    row = {
        "name": repro.name,
        "scale": repro.scale,
        "slug": slug(repro.slug),
        "href": href,
        "title": data.get("title", ""),
        "counts": content.counts(data),
        "seeds": len(seeds),
        "ran": when,
        "commit": ", ".join(content.short(c) for c, _ in commits.most_common()) or "unknown",
        "dirty": dirty,
        "failed": len(repro.failed),
    }
    verdicts = " ".join(content.verdict(c) for c in data.get("claims") or [])
    row["search"] = " ".join(
        [repro.name, repro.scale, row["title"], row["commit"], verdicts]
        + [c.get("text", "") for c in data.get("claims") or []]
    ).lower()
    return row


def write_reproduction(env, view: StoreView, repro: Reproduction, out: Path) -> dict:
    folder = out / "r" / slug(repro.slug)
    shown = _copy_figures(repro.folder, folder)
    data = repro.report.data
    md = (folder / "report.md").read_text() if (folder / "report.md").is_file() else ""
    body, used = report_body(md, data.get("title", ""), shown)
    (folder / "values.csv").write_text(content.values_csv(repro))
    page = _summary(repro, f"r/{slug(repro.slug)}/index.html")
    page |= {
        "claims": _claim_rows(data),
        "family": any("family_status" in c for c in data.get("claims") or []),
        "body": body,
        "more_figures": [f for f in dict.fromkeys(shown.values()) if f not in used],
        "failed_runs": repro.failed,  # the runs themselves ("failed" is their count)
        "provenance": content.provenance(repro),
        "rerun": content.rerun(repro),
        "files": [f for f in ("report.md", "claims.json") if (folder / f).is_file()],
    }
    html = env.get_template("reproduction.html").render(
        r=page, title=f"{repro.name} ({repro.scale})", root="../../", **_common(view)
    )
    (folder / "index.html").write_text(html)
    return page


def write_comparison(env, view: StoreView, comp: Comparison, out: Path) -> dict:
    name = comp.parent.name
    folder = out / "c" / slug(f"{name}-{comp.parent.run_id[:8]}")
    shown = _copy_figures(comp.folder, folder)
    md = (folder / "report.md").read_text() if (folder / "report.md").is_file() else ""
    body, used = report_body(md, "", shown)
    page = {
        "name": name,
        "run_id": comp.parent.run_id,
        "experiment": comp.experiment,
        # the command compare recorded (its --baseline too); older builds: the name only
        "command": comp.parent.tags.get("regbench.compare.command") or f"regbench compare {name}",
        "body": body,
        "more_figures": [f for f in dict.fromkeys(shown.values()) if f not in used],
        "files": [f for f in ("report.md", "summary.json") if (folder / f).is_file()],
    }
    html = env.get_template("comparison.html").render(
        c=page, title=f"compare {name}", root="../../", **_common(view)
    )
    (folder / "index.html").write_text(html)
    kind = comp.parent.tags.get("sweep.kind") or (
        "reproduction" if comp.parent.tags.get("regbench.reproduction") else "run"
    )
    return {
        "name": name,
        "href": f"c/{folder.name}/index.html",
        "experiment": comp.experiment,
        "kind": kind,
        "ran": content.when(comp.parent),
    }


def write_site(view: StoreView, out: Path) -> dict[str, int]:
    """Write every page into ``out`` (an empty or earlier site folder); returns counts."""
    env = environment()
    templates = Path(__file__).parent / "templates"
    for asset in ASSETS:
        shutil.copyfile(templates / asset, out / asset)
    rows, missing = [], []
    for repro in view.reproductions:
        if repro.report is None:
            last = max(repro.failed, key=lambda r: r.start_ms, default=None)
            failed_parent = [p for p in repro.parents if p.status != "FINISHED"]
            error = (last.error if last else "") or next((p.error for p in failed_parent), "")
            missing.append(
                {
                    "name": repro.name,
                    "scale": repro.scale,
                    "runs": content.run_counts(repro),
                    "error": error or "no report logged",
                    "command": content.command(repro),
                }
            )
            continue
        rows.append(write_reproduction(env, view, repro, out))
    comparisons = [write_comparison(env, view, c, out) for c in view.comparisons]
    sections = []
    for repro in view.reproductions:
        if repro.builds:
            sections.append(
                {
                    "name": repro.name,
                    "scale": repro.scale,
                    "slug": slug(repro.slug),
                    "href": f"r/{slug(repro.slug)}/index.html",
                    "table": content.history_table(repro.builds),
                }
            )
    common = _common(view)
    (out / "index.html").write_text(
        env.get_template("index.html").render(
            rows=rows,
            missing=missing,
            comparisons=comparisons,
            title="Reproductions",
            root="",
            **common,
        )
    )
    (out / "history.html").write_text(
        env.get_template("history.html").render(
            sections=sections, title="History", root="", **common
        )
    )
    return {
        "reproductions": len(rows),
        "without_report": len(missing),
        "comparisons": len(comparisons),
        "failed_runs": sum(len(r.failed) for r in view.reproductions),
        "flips": sum(s["table"]["flips"] for s in sections),
    }

"""``regbench compare NAME``: any sweep over seeds, summarized and compared with a baseline.

NAME is a parent run: a ``regbench train -m`` grid, an Optuna sweep or a reproduction's
grid (see :mod:`regbench.report.groups` for how it is found and grouped). Output:

- on stdout, a markdown table of the main final metrics per configuration (mean ± 95%
  t-interval half-width over seeds) and of the paired differences from the baseline
  (``--baseline key=value``, default the first configuration);
- ``reports/compare/<name>/`` (``REGBENCH_REPORTS`` moves ``reports/``): ``report.md``
  with every final metric, ``summary.json`` and two figures;
- the same table (``log_table``, ``compare/summary.json``), figures (``log_figure``) and
  ``report.md`` on the parent run, so they show in the MLflow UI.

It reads the store and only adds artifacts to the parent run: nothing is trained.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from regbench.errors import ConfigError
from regbench.report.groups import (
    MAIN_METRICS,
    SHARED_NOTE,
    Arms,
    Group,
    arm_baseline,
    common_metrics,
    find_parent_run,
    finished_children,
    fmt_diff,
    fmt_summary,
    group_runs,
    interval_shown,
    name_arms,
    paired_diff,
    pick_baseline,
    shared_metric,
    summarize,
)
from regbench.report.markdown import table

ARTIFACT_DIR = "compare"


@dataclass
class Source:
    """What ``regbench compare NAME`` reads when NAME is a reproduction: every parent run
    of its grids (newest first; the comparison is logged on the first), and the arms it
    declares (labels, baseline). Built by :func:`regbench.reproductions.compare_source`."""

    name: str
    parents: list = field(default_factory=list)
    arms: Arms | None = None


def summary_rows(groups: Sequence[Group], base: int, metrics: Sequence[str]) -> list[dict]:
    """One row per (configuration, metric): mean, interval, seeds, paired difference."""
    rows = []
    shared = {m: shared_metric(groups, m) for m in metrics}
    for i, g in enumerate(groups):
        for m in metrics:
            s, d = summarize(g, m), paired_diff(g, groups[base], m)
            ci, dci = interval_shown(s, shared[m]), interval_shown(d, shared[m])
            rows.append(
                {
                    "configuration": g.label,
                    "baseline": i == base,
                    "metric": m,
                    "seeds": s.n if s else 0,
                    "mean": s.mean if s else None,
                    "ci95_lo": s.lo if ci else None,
                    "ci95_hi": s.hi if ci else None,
                    "diff_vs_baseline": d.mean if d and i != base else None,
                    "diff_ci95_lo": d.lo if dci and i != base else None,
                    "diff_ci95_hi": d.hi if dci and i != base else None,
                    "paired_seeds": d.n if d else 0,
                    "shared_in_batched_group": shared[m],
                }
            )
    return rows


def _cell(g: Group, metric: str, shared: bool = False) -> str:
    return fmt_summary(summarize(g, metric), 4, len(g.runs), shared)


def _diff(g: Group, base: Group, metric: str, shared: bool = False) -> str:
    return fmt_diff(paired_diff(g, base, metric), 4, shared)


def markdown_tables(groups: Sequence[Group], base: int, metrics: Sequence[str]) -> str:
    """The summary table (mean ± 95% half-width) and the paired-difference table."""
    mark = ["**baseline** " if i == base else "" for i in range(len(groups))]
    head = ["configuration", "seeds", *metrics]
    sh = {m: shared_metric(groups, m) for m in metrics}
    rows = [
        [mark[i] + g.label, len(g.runs), *[_cell(g, m, sh[m]) for m in metrics]]
        for i, g in enumerate(groups)
    ]
    out = [
        "Mean ± 95% t-interval half-width over seeds:",
        table(head, rows),
    ]
    others = [i for i in range(len(groups)) if i != base]
    if others:
        diff_rows = [
            [groups[i].label, *[_diff(groups[i], groups[base], m, sh[m]) for m in metrics]]
            for i in others
        ]
        out += [
            f"Paired per-seed difference from the baseline ({groups[base].label}), "
            "mean [95% t-interval]:",
            table(["configuration", *metrics], diff_rows),
        ]
    if any(sh.values()):
        out.append(SHARED_NOTE)
    return "\n\n".join(out)


def long_table(groups: Sequence[Group], base: int, metrics: Sequence[str]) -> str:
    """Every metric, one row per (metric, configuration): readable for any count."""
    rows = []
    sh = {m: shared_metric(groups, m) for m in metrics}
    for m in metrics:
        for i, g in enumerate(groups):
            diff = "baseline" if i == base else _diff(g, groups[base], m, sh[m])
            rows.append([m, g.label, _cell(g, m, sh[m]), diff])
    head = ["metric", "configuration", "mean ± 95% half-width", "paired diff [95% CI]"]
    return table(head, rows) + ("\n\n" + SHARED_NOTE if any(sh.values()) else "")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "run"


def _histories(client, groups: Sequence[Group], metrics: Sequence[str]) -> dict[str, dict]:
    return {
        r.run_id: {
            m: sorted((int(x.step), float(x.value)) for x in client.get_metric_history(r.run_id, m))
            for m in metrics
        }
        for g in groups
        for r in g.runs.values()
    }


def _log_table(client, run_id: str, rows: list[dict], path: Path, artifact_file: str) -> None:
    """``log_table`` appends to an existing table; a rerun replaces it instead (same
    JSON layout, pandas' "split" orient, which is what the UI reads)."""
    cols = list(rows[0])
    path.write_text(json.dumps({"columns": cols, "data": [[r[c] for c in cols] for r in rows]}))
    folder, _, _ = artifact_file.rpartition("/")
    existing = [a.path for a in client.list_artifacts(run_id, folder or None)]
    if artifact_file in existing:
        client.log_artifact(run_id, str(path), folder or None)
    else:
        client.log_table(run_id, {c: [r[c] for r in rows] for c in cols}, artifact_file)


#: the command line that built a comparison, a tag on its parent run (the site shows it)
COMMAND_TAG = "regbench.compare.command"


def compare(
    name: str,
    baseline: str | None = None,
    experiment: str | None = None,
    metrics: Sequence[str] = (),
    source: Source | None = None,
    command: str | None = None,
) -> tuple[str, Path]:
    """Build the comparison; returns (stdout markdown, report folder). ``source``: the
    parents and arms of a reproduction (else NAME is looked up as one parent run);
    ``command``: the command line, kept as the parent's :data:`COMMAND_TAG`."""
    from regbench.report.plots import save
    from regbench.report.writer import report_dir
    from regbench.tracking import get_client

    client = get_client()
    parents = source.parents if source else [find_parent_run(client, name, experiment)]
    parent = parents[0]
    records = [rec for p in parents for rec in finished_children(client, p)]
    groups = group_runs(sorted(records, key=lambda rec: (rec.start_time, rec.run_id)))
    arms = source.arms if source else None
    if arms is not None:
        groups = name_arms(groups, arms)
    if baseline or arms is None:
        base = pick_baseline(groups, baseline)
    else:
        base = arm_baseline(groups, arms)
    every = common_metrics(groups)
    missing = [m for m in metrics if m not in every]
    if missing:
        raise ConfigError(
            f"regbench compare: --metric {', '.join(missing)} not logged by every run; "
            f"logged: {', '.join(every)}"
        )
    main = list(metrics) or [m for m in MAIN_METRICS if m in every] or every[:4]
    pid, pname = parent.info.run_id, parent.info.run_name
    n_runs = sum(len(g.runs) for g in groups)
    title = f"# compare {pname}\n\nparent run {pid}: {len(groups)} configurations, {n_runs} runs"
    if source is not None:
        pname = source.name
        grids = ", ".join(f"{p.info.run_name} ({p.info.run_id})" for p in parents)
        title = (
            f"# compare {pname}\n\n{len(groups)} configurations, {n_runs} runs from the "
            f"parent runs {grids}"
        )
    brief = markdown_tables(groups, base, main)
    full = long_table(groups, base, every) if every != main else ""
    out_dir = report_dir(f"compare/{_slug(pname)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = summary_rows(groups, base, every)

    val = [m for m in every if m.startswith("val/")]
    from regbench.report.compare_plots import learning_curves, metric_vs_axis

    figures = {"metrics_vs_setting.png": metric_vs_axis(groups, main[:4], groups[base])}
    if val:
        hist = _histories(client, groups, val)
        figures["val_curves.png"] = learning_curves(groups, hist, val, groups[base])
    for fname, fig in figures.items():
        client.log_figure(pid, fig, f"{ARTIFACT_DIR}/{fname}")
        save(fig, out_dir / fname)
    body = [title, brief]
    if full:
        body += [f"## Every final metric (baseline {groups[base].label})", full]
    body += [f"![{f}]({f})" for f in figures]
    md = "\n\n".join(body) + "\n"
    (out_dir / "report.md").write_text(md)
    with tempfile.TemporaryDirectory() as d:
        _log_table(client, pid, rows, Path(d) / "summary.json", f"{ARTIFACT_DIR}/summary.json")
    (out_dir / "summary.json").write_text(json.dumps(rows, indent=1))
    if command:  # what rebuilds this comparison, --baseline included
        client.set_tag(pid, COMMAND_TAG, command)
    client.log_artifact(pid, str(out_dir / "report.md"), ARTIFACT_DIR)
    return "\n\n".join([title, brief]) + "\n", out_dir


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="regbench compare",
        description=(
            "Compare a grid's or sweep's configurations over seeds, with a baseline.\n\n"
            "Groups the parent run's finished child runs by the settings that vary, prints\n"
            "the mean and 95% t-interval of each final metric per configuration and the\n"
            "paired per-seed difference from the baseline, and writes reports/compare/NAME/\n"
            "(report.md, summary.json, figures), also logged on the parent run. For a\n"
            "reproduction, every grid it trained, with the arms and baseline it declares.\n"
            "Nothing is trained."
        ),
        epilog=(
            "examples:\n"
            "  regbench compare multirun-20260101-120000-abc123      # printed by train -m\n"
            "  regbench compare multirun-20260101-120000-abc123 --baseline 'reg=[]'\n"
            "  regbench compare mlp_tpe --metric test/acc            # an Optuna study\n"
            "  regbench compare variance_shift --scale tiny          # a reproduction"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "name",
        help="parent run: run id, run name (multirun-...), sweep id, study or reproduction name",
    )
    p.add_argument(
        "--baseline",
        help="the configuration others are compared with, key=value (join several with &); "
        "default: the reproduction's declared baseline, else the first configuration",
    )
    p.add_argument("--experiment", help="look for NAME only in this experiment (default: all)")
    p.add_argument(
        "--metric",
        action="append",
        default=[],
        help="final metric to show, repeatable (default: test/acc, test/loss, val/acc, "
        "val/loss, time/fit_s where logged)",
    )
    p.add_argument(
        "--scale",
        help="a reproduction's scale, tiny | cpu | paper (default: the one with runs, cpu if "
        "several)",
    )
    return p


def main(argv: list[str], resolve=None) -> None:
    """``resolve(name, scale)``: the :class:`Source` of a reproduction named ``name``, or
    None when it is not one (the CLI passes :func:`regbench.reproductions.compare_source`;
    this package sits below the reproductions)."""
    args = _parser().parse_args(argv)
    try:
        source = resolve(args.name, args.scale) if resolve and not args.experiment else None
        if args.scale and source is None:
            raise ConfigError(
                f"regbench compare: --scale is for reproductions; {args.name!r} is not one"
            )
        import shlex

        command = shlex.join(["regbench", "compare", *argv])
        text, out_dir = compare(
            args.name, args.baseline, args.experiment, args.metric, source, command
        )
    except ConfigError as e:
        print(str(e).splitlines()[0], file=sys.stderr)
        raise SystemExit(2) from None
    print(text)
    print(f"report: {out_dir / 'report.md'}  (also under '{ARTIFACT_DIR}/' on the parent run)")

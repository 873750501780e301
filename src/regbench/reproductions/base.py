"""What every reproduction shares: its grid through the sweep machinery, then a report.

A reproduction names its experiment, its grid (base overrides + axes) per scale, and
how to turn the finished runs into tables, figures and verdicts. Training goes through
``regbench.sweep.run_grid`` (resumable, parallel, one parent run with child runs); the
report reads everything back from MLflow, so ``regbench report`` needs no training.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from regbench.errors import ConfigError
from regbench.report import REPRO_TAG, RunRecord, find_parent, load_runs, report_dir
from regbench.report.claims import Verdict
from regbench.report.family import counts, holm
from regbench.report.groups import Arms
from regbench.report.markdown import claims_section
from regbench.report.writer import write_report

#: tiny: seconds, same code path (make test asserts its verdicts); cpu: minutes on 2 cores;
#: paper: the published setup (GPU)
SCALES = ("tiny", "cpu", "paper")


@dataclass
class Report:
    """What a reproduction's analysis produces; ``markdown`` is the body below the title.
    ``claims`` are judged claims (:mod:`regbench.report.claims`), shown as the claims
    table at the top of the report."""

    markdown: str
    figures: list[Path] = field(default_factory=list)
    claims: list[Verdict] = field(default_factory=list)

    @classmethod
    def of(cls, parts: Sequence[str], figure: Path, alt: str, claims: Sequence[Verdict]) -> Report:
        """The usual report: markdown ``parts`` (paragraphs, tables), then ``figure`` shown
        below them with ``alt`` as its alt text."""
        md = "\n\n".join([*parts, f"![{alt}]({figure.name})"])
        return cls(md, figures=[figure], claims=list(claims))


class Reproduction:
    name: str = ""
    title: str = ""  # paper and claim, one line
    default_seeds: dict[str, int] = {"cpu": 2, "paper": 1}  # its keys: the scales it has
    objective: str = "val/acc"  # the grid's (unused) Optuna objective; must be logged
    #: how ``regbench compare NAME`` labels this reproduction's configurations and which
    #: is its baseline (None: by every varied setting, baseline the first, as any sweep)
    arms: Arms | None = None
    #: the declared grid (read by :meth:`grid`): its axes, key -> values, or key ->
    #: {scale: values} for an axis whose values differ by scale; and the overrides that
    #: shrink the experiment to tiny scale (seconds, the same code path)
    axes: Mapping[str, Sequence | Mapping[str, Sequence]] = {}
    tiny: Sequence[str] = ()

    def experiment_name(self, scale: str) -> str:
        return f"reproduce-{self.name}" + ("" if scale == "cpu" else f"-{scale}")

    def base(self, scale: str) -> list[str]:
        """The grid's base overrides at ``scale``: conf/experiment/<name>.yaml
        (<name>_paper.yaml at paper scale), shrunk by :attr:`tiny` at tiny scale."""
        config = self.name + ("_paper" if scale == "paper" else "")
        return [f"experiment={config}", *(self.tiny if scale == "tiny" else ())]

    def grid(self, scale: str) -> tuple[list[str], dict[str, list]]:
        """Base overrides and the axes (key -> values) of the grid at ``scale``: by default
        :meth:`base` and the declared :attr:`axes`."""
        if not self.axes:
            raise NotImplementedError(f"{self.name} declares no grid axes")
        axes = {k: v[scale] if isinstance(v, Mapping) else v for k, v in self.axes.items()}
        return self.base(scale), {k: list(v) for k, v in axes.items()}

    def train(self, scale: str, seeds: list[int], n_jobs: int) -> str | None:
        """Run (or resume) the grid; returns the parent run id."""
        base, axes = self.grid(scale)
        experiment = self.experiment_name(scale)
        results = grid(experiment, base, axes, seeds, n_jobs, experiment, self.objective)
        return self.check(results, experiment, scale)

    def check(self, results: list[dict], experiment: str, scale: str) -> str | None:
        """Stop on runs that did not complete; tag the grid's parent run."""
        failed = [r for r in results if r.get("state") != "COMPLETE"]
        for r in failed:
            print(
                f"[{self.name}] {r.get('overrides')} seed={r.get('seed')}: "
                f"{r.get('state')} {r.get('error') or ''}"
            )
        if failed:
            raise SystemExit(
                f"{len(failed)} of {len(results)} runs did not complete; rerun "
                f"`regbench reproduce {self.name}` to retry them"
            )
        return tag_parent(experiment, results, self.name, scale)

    def analyse(self, experiment: str, scale: str, out_dir: Path) -> Report:
        raise NotImplementedError

    def compare_parents(self, scale: str) -> list:
        """The parent runs ``regbench compare NAME`` reads, newest first: every training
        grid this reproduction ran at ``scale`` (tagged by :func:`tag_parent`), so an arm
        trained as a grid of its own is not left out. Runs outside the grids (timings,
        closed forms: ``direct.parent_run``) are compared only where there is no grid."""
        from regbench.tracking import get_client

        client = get_client()
        exp = client.get_experiment_by_name(self.experiment_name(scale))
        if exp is None:
            return []
        query = f"tags.`{REPRO_TAG}` = '{self.name}'"
        runs = client.search_runs([exp.experiment_id], query, max_results=1000)
        grids = [r for r in runs if r.data.tags.get("sweep.study")] or runs
        return sorted(grids, key=lambda r: (r.info.start_time or 0, r.info.run_id), reverse=True)

    def finished_runs(
        self, experiment: str, point: Callable[[RunRecord], Hashable]
    ) -> list[RunRecord]:
        """The experiment's finished runs, the newest one per grid point (``point(run)``)
        and seed (:func:`load_runs`); stops with one line when there are none."""
        runs = load_runs(experiment, key=lambda r: (point(r), r.seed))
        self.require_runs(runs, experiment)
        return runs

    def require_runs(self, runs: Sequence, experiment: str) -> None:
        """Stop with one line when the store holds no finished runs to report on."""
        if not runs:
            raise SystemExit(
                f"no finished runs in experiment {experiment!r}; run "
                f"`regbench reproduce {self.name}` first"
            )


def grid(
    name: str,
    base: Sequence[str],
    axes: dict[str, list],
    seeds: Sequence[int],
    n_jobs: int,
    experiment: str,
    objective: str = "val/acc",
) -> list[dict]:
    """``regbench.sweep.run_grid`` with a reproduction's experiment and objective metric."""
    from regbench.sweep import run_grid

    return run_grid(
        name, list(base), axes, list(seeds), n_jobs=n_jobs, experiment_name=experiment,
        objective=objective,
    )  # fmt: skip


def tag_parent(experiment: str, results: Sequence[dict], name: str, scale: str) -> str | None:
    """Mark the grid's parent run as this reproduction's, so ``report`` finds it."""
    from regbench.tracking import NOTE_TAG, PARENT_TAG, get_client

    client = get_client()
    parent = None
    for res in results:
        run_id = res.get("run_id")
        if run_id:
            parent = client.get_run(run_id).data.tags.get(PARENT_TAG) or parent
    if parent:
        client.set_tag(parent, REPRO_TAG, name)
        client.set_tag(parent, "regbench.scale", scale)
        client.set_tag(parent, NOTE_TAG, parent_note(name, scale))
    return parent


def parent_note(name: str, scale: str) -> str:
    """The parent run's description in the MLflow UI."""
    from regbench.tracking import GROUP_HINT

    return (
        f"Reproduction `{name}` at {scale} scale: one child run per grid point and seed. "
        f"Report: `regbench report {name} --scale {scale}` (artifacts under report/); "
        f"seed-averaged table: `regbench compare {name}`. " + GROUP_HINT
    )


def build_report(repro: Reproduction, scale: str) -> Path:
    """Analyse the experiment's runs, write ``report.md`` + figures, log them on the
    parent run; returns the report path."""
    experiment = repro.experiment_name(scale)
    out_dir = report_dir(repro.name, scale)
    out_dir.mkdir(parents=True, exist_ok=True)
    rep = repro.analyse(experiment, scale, out_dir)
    verdicts = holm(rep.claims)  # family-wise verdicts beside the per-claim ones
    parts = [f"# {repro.name} ({scale} scale)", repro.title]
    if verdicts:
        parts.append(claims_section(verdicts))
    parts.append(rep.markdown)
    md = "\n\n".join(parts) + "\n"
    parent = find_parent(experiment)
    data = {
        "reproduction": repro.name,
        "scale": scale,
        "title": repro.title,
        "experiment": experiment,
        "parent_run_id": parent,
        "counts": counts(verdicts),  # family-wise for findings and folk claims
        "family": {
            "method": "Holm 1979 step-down, each one-sided test at 0.025",
            "size": max((v.family_size for v in verdicts), default=0),
        },
        "claims": [v.to_dict() for v in verdicts],
    }
    return write_report(out_dir, md, rep.figures, parent, claims=data)


def check_scale(scale: str, repro: Reproduction | None = None) -> str:
    known = [s for s in SCALES if repro is None or s in repro.default_seeds]
    if scale not in known:
        raise ConfigError(
            f"--scale={scale!r} is not a scale of {repro.name if repro else 'any reproduction'}; "
            "choose one of: " + ", ".join(known)
        )
    return scale

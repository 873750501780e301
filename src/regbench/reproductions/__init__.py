"""``regbench reproduce NAME`` and ``regbench report NAME``: published results, one
command each (see docs/REPRODUCTIONS.md). ``regbench reproduce --all`` runs every
registered one; its exit status is 0 whatever the verdicts (a REFUTED claim is a result)
and non-zero only when runs fail.

- variance_shift: dropout/BatchNorm disharmony (Li et al. 2019, arXiv 1801.05134)
- model_double_descent: test error over width (Nakkiran et al. 2019, arXiv 1912.02292)
- epoch_double_descent: test error over training time (Pezeshki et al. 2022,
  arXiv 2112.03215; Heckel & Yilmaz 2021, arXiv 2007.10099)
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from regbench.errors import ConfigError, positive_int
from regbench.registry import Registry

#: reproduction name -> Reproduction instance factory
REPRODUCTIONS = Registry("reproduction")


def _register() -> None:
    """Import every module of this package: a reproduction registers itself with
    ``@REPRODUCTIONS.register``, so adding one touches only its own files."""
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")


def get(name: str):
    _register()
    return REPRODUCTIONS.get(name, "reproduction")()


def names() -> list[str]:
    _register()
    return sorted(REPRODUCTIONS.names())


def listing() -> str:
    """One line per reproduction: its name, scales and claim."""
    lines, width = [], max(len(n) for n in names())
    for n in names():
        r = get(n)
        lines.append(f"{n:<{width}} [{', '.join(r.default_seeds)}]  {r.title}")
    return "\n".join(lines)


DESCRIPTIONS = {
    "reproduce": (
        "Reproduce a published result: train its grid, then report a verdict per claim.\n\n"
        "Reruns reuse finished runs. The report (claims, tables, figures) goes to\n"
        "reports/<name>/ (reports/<name>-tiny/ at tiny scale, -paper at paper scale) and\n"
        "onto the grid's MLflow parent run; the terminal shows the verdicts and the path.\n"
        "Exit status 0 whatever the verdicts; non-zero only when runs fail."
    ),
    "report": (
        "Rebuild a reproduction's report from its runs in MLflow; nothing is trained.\n\n"
        "Written where `regbench reproduce` writes it: reports/<name>/ (reports/<name>-tiny/,\n"
        "reports/<name>-paper/ at those scales), and onto the MLflow parent run."
    ),
}
EXAMPLES = {
    "reproduce": (
        "examples:\n"
        "  regbench reproduce --list\n"
        "  regbench reproduce variance_shift --scale tiny     # seconds, same code path\n"
        "  regbench reproduce variance_shift --seeds 5        # cpu scale, 5 seeds\n"
        "  regbench reproduce --all"
    ),
    "report": (
        "examples:\n"
        "  regbench report variance_shift                # the scale that has runs\n"
        "  regbench report variance_shift --scale tiny"
    ),
}


def _parser(cmd: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"regbench {cmd}",
        description=DESCRIPTIONS[cmd],
        epilog=EXAMPLES[cmd],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", nargs="?", help="a reproduction (see --list)")
    p.add_argument("--list", action="store_true", help="list every reproduction and its claim")
    p.add_argument("--all", action="store_true", help="every reproduction, one after another")
    if cmd == "reproduce":
        p.add_argument(
            "--scale",
            default="cpu",
            help="tiny (seconds) | cpu (minutes on 2 cores) | paper (GPU); default: cpu",
        )
        p.add_argument(
            "--seeds", type=int, default=None, help="seeds 0..N-1 (default: the reproduction's)"
        )
        p.add_argument(
            "--n-jobs",
            type=int,
            default=min(2, os.cpu_count() or 1),
            help="parallel training workers (default: min(2, cores) = %(default)s)",
        )
    else:
        p.add_argument(
            "--scale",
            default=None,
            help="tiny | cpu | paper; default: the scale that has runs (cpu if several do)",
        )
    return p


def _scales_with_runs(repro) -> list[str]:
    """The scales of ``repro`` whose experiment holds at least one run."""
    from regbench import tracking

    client = tracking.get_client()
    found = []
    for scale in repro.default_seeds:
        exp = client.get_experiment_by_name(repro.experiment_name(scale))
        if exp is not None and client.search_runs([exp.experiment_id], max_results=1):
            found.append(scale)
    return found


def _report_scale(repro, name: str, scale: str | None) -> str:
    """``report``'s scale: the one asked for, else the one with runs (cpu, the default
    scale, when several have runs). ``report`` reads MLflow only: with nothing logged
    there is nothing to report."""
    from regbench import tracking
    from regbench.reproductions.base import check_scale

    if scale is not None:
        check_scale(scale, repro)
    have = _scales_with_runs(repro)
    if scale is None and have:
        return "cpu" if "cpu" in have else have[0]
    if scale in have:
        return scale
    where = f"at {scale} scale" if scale else "at any scale"
    hint = f" (runs exist at: {', '.join(have)})" if have else ""
    run = f"regbench reproduce {name} --scale {scale or 'tiny'}"
    raise ConfigError(
        f"no runs of {name} {where} in {tracking.tracking_uri()}{hint}; run `{run}` first"
    )


def _bad_input(cmd: str, error: Exception) -> None:
    """One line, exit code 2, before anything runs."""
    print(f"regbench {cmd}: {error}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def _shown(path) -> str:
    """``path`` relative to the working directory when it is below it."""
    from pathlib import Path

    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def summary(report_path, name: str, scale: str) -> str:
    """What the terminal shows of a report: the verdicts counted by role (family-wise for
    findings and folk claims; checks are listed, never evidence), one line per claim, and
    where the report is (the full tables and figures are in the file)."""
    import json

    claims_path = report_path.parent / "claims.json"
    data = json.loads(claims_path.read_text()) if claims_path.exists() else {}
    verdicts = data.get("claims", [])
    counts = data.get("counts") or {}
    parts = []
    for role, label in (("finding", "findings"), ("folk", "folk claims"), ("check", "checks")):
        c = counts.get(role, {})
        if sum(c.values()):
            parts.append(f"{label} " + ", ".join(f"{c.get(k, 0)} {k}" for k in VERDICTS))
    lines = [f"{name} ({scale} scale): " + ("; ".join(parts) or "no claims")]
    for v in verdicts:
        status, notes = v.get("family_status") or v["status"], [v.get("note")]
        if status != v["status"]:  # Holm's step-down decided otherwise than the claim alone
            status = f"{status} (alone: {v['status']})"
            notes.append(v.get("family_note"))
        note = "; ".join(n for n in notes if n)
        role = " [check]" if v.get("role") == "check" else ""
        lines.append(
            f"  {status:<12}{role} {v['text']}: {v['estimate_text']}, "
            f"claim {v['threshold_text']}" + (f" ({note})" if note else "")
        )
    lines.append(
        f"report: {_shown(report_path)} (tables and figures; also under report/ on the "
        "MLflow parent run)"
    )
    return "\n".join(lines)


VERDICTS = ("SUPPORTED", "REFUTED", "INCONCLUSIVE")


def _one(cmd: str, name: str, args) -> None:
    """Train (``reproduce``) and report one reproduction; SystemExit when runs fail."""
    from regbench.reproductions.base import build_report, check_scale

    try:
        repro = get(name)
        if cmd == "reproduce":
            scale = check_scale(args.scale, repro)
            positive_int("--n-jobs", args.n_jobs)
            if args.seeds is not None:
                positive_int("--seeds", args.seeds)
        else:
            scale = _report_scale(repro, name, args.scale)
            if args.scale is None:
                print(f"report {name}: {scale} scale (--scale to choose another)", flush=True)
    except ConfigError as e:
        _bad_input(cmd, e)
    t0 = time.time()
    if cmd == "reproduce":
        n = args.seeds if args.seeds is not None else repro.default_seeds[scale]
        repro.train(scale, list(range(n)), args.n_jobs)
    path = build_report(repro, scale)
    print(summary(path, name, scale))
    print(f"{cmd} {name} ({scale}): {time.time() - t0:.0f}s", flush=True)


def compare_source(name: str, scale: str | None):
    """``regbench compare NAME`` for a reproduction: its grids' parent runs at ``scale``
    (default: the scale with runs) and its declared arms; None when NAME is not one."""
    from regbench.report.compare import Source

    if name not in names():
        return None
    repro = get(name)
    scale = _report_scale(repro, name, scale)
    return Source(f"{name}-{scale}", repro.compare_parents(scale), repro.arms)


def main(cmd: str, argv: list[str]) -> None:
    args = _parser(cmd).parse_args(argv)
    if args.list:
        print(listing())
        return
    if args.all == bool(args.name):
        _bad_input(cmd, "name one reproduction or pass --all; one of: " + ", ".join(names()))
    if args.name:
        _one(cmd, args.name, args)
        return
    t0, failed = time.time(), []
    for name in names():  # one failing reproduction does not stop the others
        try:
            _one(cmd, name, args)
        except SystemExit as e:
            print(f"regbench {cmd} {name}: {e}", flush=True)
            failed.append(name)
    scale = args.scale or "the scale with runs"
    print(f"{cmd} --all ({scale}): {len(names())} reproductions, {time.time() - t0:.0f}s")
    if failed:
        raise SystemExit(f"regbench {cmd} --all: runs failed in {', '.join(failed)}")

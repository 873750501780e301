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


def _parser(cmd: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"regbench {cmd}")
    p.add_argument("name", nargs="?", help="a reproduction (see --list)")
    p.add_argument("--list", action="store_true", help="list every reproduction and its claim")
    p.add_argument("--all", action="store_true", help="every reproduction, one after another")
    p.add_argument(
        "--scale", default="cpu", help="tiny (seconds) | cpu (minutes here) | paper (GPU)"
    )
    if cmd == "reproduce":
        p.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default per name)")
        p.add_argument(
            "--n-jobs",
            type=int,
            default=min(2, os.cpu_count() or 1),
            help="parallel training workers (default: min(2, cores))",
        )
    return p


def _check_has_runs(repro, name: str, scale: str) -> None:
    """``report`` reads MLflow only: with nothing logged there is nothing to report."""
    from regbench import tracking

    client = tracking.get_client()
    exp = client.get_experiment_by_name(repro.experiment_name(scale))
    if exp is None or not client.search_runs([exp.experiment_id], max_results=1):
        raise ConfigError(
            f"report {name} --scale={scale}: no runs of experiment "
            f"{repro.experiment_name(scale)!r} in {tracking.tracking_uri()}; "
            f"run `regbench reproduce {name} --scale {scale}` first"
        )


def _bad_input(cmd: str, error: Exception) -> None:
    """One line, exit code 2, before anything runs."""
    print(f"regbench {cmd}: {error}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def _one(cmd: str, name: str, args) -> None:
    """Train (``reproduce``) and report one reproduction; SystemExit when runs fail."""
    from regbench.reproductions.base import build_report, check_scale

    try:
        repro = get(name)
        scale = check_scale(args.scale, repro)
        if cmd == "reproduce":
            positive_int("--n-jobs", args.n_jobs)
            if args.seeds is not None:
                positive_int("--seeds", args.seeds)
        else:
            _check_has_runs(repro, name, scale)
    except ConfigError as e:
        _bad_input(cmd, e)
    t0 = time.time()
    if cmd == "reproduce":
        n = args.seeds if args.seeds is not None else repro.default_seeds[scale]
        repro.train(scale, list(range(n)), args.n_jobs)
    path = build_report(repro, scale)
    print(path.read_text())
    print(f"report: {path}  ({path.parent})")
    print(f"{cmd} {name} ({scale}): {time.time() - t0:.0f}s", flush=True)


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
    print(f"{cmd} --all ({args.scale}): {len(names())} reproductions, {time.time() - t0:.0f}s")
    if failed:
        raise SystemExit(f"regbench {cmd} --all: runs failed in {', '.join(failed)}")

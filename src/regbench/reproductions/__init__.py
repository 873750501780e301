"""``regbench reproduce NAME`` and ``regbench report NAME``: published results, one
command each (see REPRODUCTIONS.md).

- variance_shift: dropout/BatchNorm disharmony (Li et al. 2019, arXiv 1801.05134)
- model_double_descent: test error over width (Nakkiran et al. 2019, arXiv 1912.02292)
- epoch_double_descent: test error over training time (Pezeshki et al. 2022,
  arXiv 2112.03215; Heckel & Yilmaz 2021, arXiv 2007.10099)
"""

from __future__ import annotations

import argparse
import os
import time

from regbench.errors import ConfigError
from regbench.registry import Registry

#: reproduction name -> Reproduction instance factory
REPRODUCTIONS = Registry("reproduction")


def _register() -> None:
    from regbench.reproductions import (  # noqa: F401  (each module registers itself)
        epoch_double_descent,
        model_double_descent,
        variance_shift,
    )


def get(name: str):
    _register()
    return REPRODUCTIONS.get(name, "reproduction")()


def _parser(cmd: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"regbench {cmd}")
    p.add_argument("name", help="variance_shift | model_double_descent | epoch_double_descent")
    p.add_argument("--scale", default="cpu", help="cpu (minutes here) | paper (GPU, CIFAR-10)")
    if cmd == "reproduce":
        p.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default per name)")
        p.add_argument(
            "--n-jobs",
            type=int,
            default=min(2, os.cpu_count() or 1),
            help="parallel training workers (default: min(2, cores))",
        )
    return p


def main(cmd: str, argv: list[str]) -> None:
    from regbench.reproductions.base import build_report, check_scale

    args = _parser(cmd).parse_args(argv)
    try:
        repro = get(args.name)
        scale = check_scale(args.scale)
    except ConfigError as e:
        raise SystemExit(f"regbench {cmd}: {e}") from None
    t0 = time.time()
    if cmd == "reproduce":
        n = args.seeds if args.seeds is not None else repro.default_seeds[scale]
        if n < 1:
            raise SystemExit(f"regbench reproduce: --seeds={n} must be >= 1")
        repro.train(scale, list(range(n)), max(1, args.n_jobs))
    path = build_report(repro, scale)
    print(path.read_text())
    print(f"report: {path}  ({path.parent})")
    print(f"{cmd} {args.name} ({scale}): {time.time() - t0:.0f}s")

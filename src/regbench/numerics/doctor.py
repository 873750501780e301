"""``regbench doctor``: the numerics check on this machine, as a table.

Run it on a new machine (a new CPU, a new torch or driver) before trusting its runs: one
training step of every model family through every batch transform that applies, with
1 and 2 threads on the CPU (and on CUDA when a GPU is present), against float64. Exit
status 0 when every case is within its tolerance, 1 when one is not (wrong gradients, a
crash, a hang), 2 for bad arguments. It trains nothing and creates no MLflow run.
``ONEDNN_MAX_CPU_ISA=AVX2 regbench doctor`` restricts oneDNN to its AVX2 kernels on a
CPU with AVX-512, the way to check the kernels an AVX2-only CPU would take.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from regbench.errors import ConfigError
from regbench.numerics.cases import INPUTS, check_families, family_names, plan
from regbench.numerics.runner import Outcome, run_cases

DEVICES = ("auto", "cpu", "cuda")
COLUMNS = (  # (title, width)
    ("family", 12),
    ("input", 14),
    ("transform", 10),
    ("width", 6),
    ("device", 7),
    ("threads", 8),
    ("worst rel. err", 15),
    ("tolerance", 10),
    ("verdict", 8),
    ("worst parameter / failure", 0),
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse prints usage on two lines; one here
        raise ConfigError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="regbench doctor",
        description=(
            "Check this machine's arithmetic: one training step of every model family\n"
            "through every batch transform that applies, its float32 gradients against a\n"
            "float64 reference, each case in a worker process (a crash or hang is reported).\n"
            "Prints a table; exit status 0 when every case is within its tolerance, 1 when\n"
            "one is not, 2 for bad arguments. Trains nothing, creates no MLflow run. Run it\n"
            "on a new machine, after upgrading torch or a driver, or when runs behave oddly."
        ),
        epilog=(
            "examples:\n"
            "  regbench doctor                                   # every family, 1 and 2 threads\n"
            "  regbench doctor --family resnet18 --device cpu --threads 2\n"
            "  ONEDNN_MAX_CPU_ISA=AVX2 regbench doctor           # on AVX-512: AVX2's kernels"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--family",
        action="append",
        default=[],
        help=f"model families to check (repeat or comma-separate; default all): "
        f"{', '.join(family_names())}",
    )
    p.add_argument(
        "--device",
        default="auto",
        help="auto (cpu, and cuda when present) | cpu | cuda (default: auto)",
    )
    p.add_argument("--threads", default="1,2", help="CPU thread counts (default 1,2)")
    p.add_argument(
        "--timeout", type=float, default=90.0, help="seconds a case may run (default 90)"
    )
    return p


def _devices(device: str) -> list[str]:
    import torch

    if device not in DEVICES:
        raise ConfigError(f"--device={device!r} is not valid; choose from: {', '.join(DEVICES)}")
    has_cuda = torch.cuda.is_available()
    if device == "cuda" and not has_cuda:
        raise ConfigError(
            "--device='cuda' is not available on this machine (torch.cuda.is_available() "
            "is False); choose from: auto, cpu"
        )
    if device == "auto":
        return ["cpu", "cuda"] if has_cuda else ["cpu"]
    return [device]


def _threads(text: str) -> list[int]:
    try:
        values = [int(t) for t in text.split(",")]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        raise ConfigError(
            f"--threads={text!r} is not valid; give thread counts >= 1, comma-separated (1,2)"
        )
    return values


def _row(cells: list[str]) -> str:
    return "  ".join(c.ljust(w) for c, (_, w) in zip(cells, COLUMNS, strict=True)).rstrip()


def _cells(o: Outcome) -> list[str]:
    spec = INPUTS[o.case.inputs]
    return [
        o.case.family,
        f"{o.case.inputs} {'x'.join(map(str, spec.shape))}",
        o.case.transform,
        str(o.case.width),
        o.device,
        str(o.threads) if o.device == "cpu" else "-",
        "-" if o.failure else f"{o.error:.2e}",
        "-" if o.failure else f"{o.tolerance:.2e}",
        o.verdict,
        o.failure or o.parameter,
    ]


def _machine(devices: list[str]) -> str:
    from regbench.numerics.worker import environment

    info = environment("cuda" if "cuda" in devices else "cpu", threads=1)
    isa = info["onednn_max_cpu_isa"] or "unset"
    gpu = f", GPU {info['gpu']}" if "gpu" in info else ""
    return (
        f"machine: {info['cpu']}, {os.cpu_count()} cores, ATen CPU capability "
        f"{info['isa']}, ONEDNN_MAX_CPU_ISA {isa}, torch {info['torch']}{gpu}"
    )


def main(argv: list[str]) -> None:
    try:
        args = _parser().parse_args(argv)
        families = [f for item in args.family for f in item.split(",") if f]
        families = check_families(families) if families else None
        devices = _devices(args.device)
        threads = _threads(args.threads)
        if not args.timeout > 0:
            raise ConfigError(f"--timeout={args.timeout!r} is not valid; it must be > 0")
    except ConfigError as e:
        print(f"regbench doctor: {e}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    t0 = time.perf_counter()
    cases = plan(families)
    runs = [(d, t) for d in devices for t in (threads if d == "cpu" else [1])]
    print(
        f"regbench doctor: {len(cases)} cases (model family x input x batch transform), one "
        f"training step each in float32 against float64, {len(runs)} device/thread "
        "setting(s)",
        flush=True,
    )
    print(_machine(devices), flush=True)
    outcomes: list[Outcome] = []
    header = False

    def show(o: Outcome) -> None:
        nonlocal header
        if not header:
            print(_row([t for t, _ in COLUMNS]), flush=True)
            header = True
        outcomes.append(o)
        print(_row(_cells(o)), flush=True)

    for device, n in runs:
        run_cases(cases, device, n, timeout_s=args.timeout, on_outcome=show)
    bad = [o for o in outcomes if not o.ok]
    counts = {v: sum(o.verdict == v for o in outcomes) for v in ("ok", "WRONG", "CRASHED", "HUNG")}
    summary = ", ".join(f"{n} {v}" for v, n in counts.items())
    print(f"{len(outcomes)} checks: {summary} ({time.perf_counter() - t0:.0f} s)", flush=True)
    if bad:
        print(
            "regbench doctor: this machine's kernels fail the check; runs of these cases "
            "here are not trustworthy:\n" + "\n".join(f"  {o.describe()}" for o in bad),
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(1)

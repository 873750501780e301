"""Run the cases in worker processes, one per (device, thread count), and turn what each
worker says or does into an :class:`Outcome`: a result, a crash or a hang.

A worker announces each case before it starts it (``start I``), so when it dies (a
signal, glibc's abort on heap corruption) or stops answering within ``timeout_s``, the
case in progress is known: it is recorded as crashed or hung, and a fresh worker takes
the cases after it, so one broken kernel does not hide the others.
"""

from __future__ import annotations

import json
import math
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from regbench.numerics.cases import Case

WORKER = (sys.executable, "-m", "regbench.numerics.worker")


@dataclass(frozen=True)
class Outcome:
    case: Case
    device: str
    threads: int
    error: float = math.nan
    parameter: str = ""
    tolerance: float = math.nan
    failure: str = ""  # "crashed: ..." or "hung: ..."; empty when the step ran

    @property
    def verdict(self) -> str:
        if self.failure:
            return self.failure.split(":", 1)[0].upper()  # CRASHED | HUNG
        return "ok" if self.error <= self.tolerance else "WRONG"

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"

    def describe(self) -> str:
        """One line naming the case, its threads and what went wrong (or its error)."""
        where = f"{self.case.label} on {self.device}, {self.threads} thread(s)"
        if self.failure:
            return f"{where}: {self.failure}"
        return (
            f"{where}: worst relative gradient error {self.error:.3g} at {self.parameter} "
            f"(tolerance {self.tolerance:.3g})"
        )


def _reader(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)  # end of output: the worker exited


def _crash_reason(returncode: int, stderr: str) -> str:
    """``SIGSEGV (Fatal Python error: Segmentation fault)``, or the exit status."""
    if returncode < 0:
        try:
            what = signal.Signals(-returncode).name
        except ValueError:
            what = f"signal {-returncode}"
    else:
        what = f"exit status {returncode}"
    text = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    # glibc's own abort message ("corrupted size vs. prev_size") or faulthandler's line
    said = [ln for ln in text if ln.startswith(("Fatal Python error", "corrupted", "free()"))]
    said = said or [ln for ln in text if "Error" in ln][-1:] or text[-1:]
    return f"{what} ({said[0]})" if said else what


def _run_worker(
    cases: Sequence[Case],
    device: str,
    threads: int,
    timeout_s: float,
    env: dict,
    worker: Sequence[str],
    done: Callable[[Outcome], None],
) -> tuple[int, dict]:
    """Run ``cases`` in one worker until they are done or it fails; returns how many it
    finished or failed on, and the environment it reported."""
    job = {"device": device, "threads": threads, "cases": [c.to_dict() for c in cases]}
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            list(worker),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=env,
            start_new_session=True,  # its own process group: a hang is killed whole
        )
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
        proc.stdin.write(json.dumps(job))
        proc.stdin.close()
        current, handled, info = None, 0, {}
        while True:
            try:
                line = lines.get(timeout=timeout_s)
            except queue.Empty:  # no word within timeout_s: hung
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                case = cases[current if current is not None else 0]
                done(Outcome(case, device, threads, failure=f"hung: no result in {timeout_s:g} s"))
                return handled + 1, info
            if line is None:
                break
            word, _, rest = line.strip().partition(" ")
            if word == "env":
                info = json.loads(rest)
            elif word == "start":
                current = int(rest)
            elif word == "result":
                i, _, res = rest.partition(" ")
                done(Outcome(cases[int(i)], device, threads, **json.loads(res)))
                handled, current = int(i) + 1, None
        rc = proc.wait()
        if current is None and handled == len(cases) and rc == 0:
            return handled, info
        err.seek(0)
        reason = _crash_reason(rc, err.read())
        if not info:  # it died before its first line: every case would meet the same end
            for case in cases:
                done(Outcome(case, device, threads, failure=f"crashed: worker: {reason}"))
            return len(cases), info
        case = cases[current if current is not None else handled]
        done(Outcome(case, device, threads, failure=f"crashed: {reason}"))
        return (current if current is not None else handled) + 1, info


def run_cases(
    cases: Sequence[Case],
    device: str = "cpu",
    threads: int = 1,
    *,
    timeout_s: float = 120.0,
    isa: str | None = None,
    worker: Sequence[str] = WORKER,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> tuple[list[Outcome], dict]:
    """Every case with ``threads`` torch threads on ``device``; ``isa`` sets
    ``ONEDNN_MAX_CPU_ISA`` for the workers (else they inherit this process's setting).
    Returns the outcomes in the cases' order and the environment the worker reported."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    # Idle OpenMP threads sleep instead of spinning: on a loaded machine (make test's
    # other workers) spinning threads made a 2-thread step 10x slower. The policy says how
    # a thread waits, not how work is split, so the kernels and their results are the same.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if isa:
        env["ONEDNN_MAX_CPU_ISA"] = isa
    outcomes: list[Outcome] = []

    def done(o: Outcome) -> None:
        outcomes.append(o)
        if on_outcome is not None:
            on_outcome(o)

    start, info = 0, {}
    while start < len(cases):
        n, got = _run_worker(cases[start:], device, threads, timeout_s, env, worker, done)
        start, info = start + n, got or info
    return outcomes, info

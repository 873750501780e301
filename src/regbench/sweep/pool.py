"""The worker processes of one study: worker 0 runs in the calling process, the others
are spawned, waited for until their imports are done, and joined.

Kept apart from :mod:`regbench.sweep.study` (which sets the study up and closes it) and
from :mod:`regbench.sweep.worker` (what each worker does), since it is the only code that
deals with processes.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from dataclasses import replace

from regbench.sweep.objective import WorkerContext
from regbench.sweep.worker import spawned_worker, work


def run_workers(ctx: WorkerContext) -> None:
    """``ctx.n_jobs`` workers: worker 0 runs here; the others are spawned processes (fresh
    interpreters: no forked database connections or torch thread pools)."""
    n_jobs = ctx.n_jobs
    if n_jobs == 1:
        work(ctx, 0)
        return
    mp = multiprocessing.get_context("spawn")
    child = replace(ctx, parent_pid=os.getpid())
    ready = [mp.Event() for _ in range(1, n_jobs)]
    procs = [
        mp.Process(target=spawned_worker, args=(child, i, ev)) for i, ev in enumerate(ready, 1)
    ]
    for p in procs:
        p.start()
    try:
        # Wait for the workers' imports (~20 s of Lightning each) so that the trials are
        # shared from the start instead of worker 0 taking the first ones alone.
        for p, ev in zip(procs, ready, strict=True):
            while not ev.wait(1.0) and p.is_alive():
                pass
        work(ctx, 0)
    except BaseException:
        for p in procs:
            p.terminate()
        raise
    finally:
        for p in procs:
            p.join()
    _warn_failed(procs)


def _warn_failed(procs: list) -> None:
    """A worker that died leaves its trials to a rerun: say so, without failing the study."""
    bad = [f"worker {i} exit code {p.exitcode}" for i, p in enumerate(procs, 1) if p.exitcode]
    if bad:
        print(
            f"warning: {', '.join(bad)}; rerun the command to finish the study",
            file=sys.stderr,
            flush=True,
        )

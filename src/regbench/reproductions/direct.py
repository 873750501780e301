"""Runs that do not go through Lightning (closed forms, full-batch GD on batched
tensors), tracked like every other run: one MLflow child run per (arm, seed) under the
reproduction's parent run, skipped on a rerun when a finished run with the same params
exists (resume), metrics logged per step.

    with parent_run(experiment, name, scale) as parent_id:
        for seed in seeds:
            run_once(experiment, parent_id, f"arm-s{seed}", {"arm": "l2", "seed": seed},
                     lambda: fit(seed))   # fit() -> [(step, {metric: value}), ...]
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

KEY_TAG = "regbench.key"  # hash of a direct run's params: finds it again on a rerun
Records = Sequence[tuple[int, Mapping[str, float]]]


def params_key(params: Mapping) -> str:
    return hashlib.sha1(json.dumps(dict(params), sort_keys=True, default=str).encode()).hexdigest()


def finished(experiment: str, params: Mapping, key_tag: str = KEY_TAG) -> bool:
    """Whether a FINISHED run with exactly these params exists in ``experiment``."""
    from regbench import tracking

    client = tracking.get_client()
    exp_id = tracking.ensure_experiment(client, experiment)
    query = f"tags.`{key_tag}` = '{params_key(params)}' and attributes.status = 'FINISHED'"
    return bool(client.search_runs([exp_id], query, max_results=1))


@contextlib.contextmanager
def parent_run(experiment: str, name: str, scale: str) -> Iterator[str]:
    """The reproduction's parent run (tagged so ``regbench report`` finds it)."""
    from regbench import tracking
    from regbench.report import REPRO_TAG
    from regbench.reproductions.base import parent_note

    tags = {
        REPRO_TAG: name,
        "regbench.scale": scale,
        "sweep.role": "parent",
        tracking.NOTE_TAG: parent_note(name, scale),
    }
    with tracking.tracked_run(experiment, f"{name}-grid", tags=tags) as parent:
        yield parent.run_id


def run_once(
    experiment: str,
    parent_id: str,
    run_name: str,
    params: Mapping,
    fit: Callable[[], Records],
    key_tag: str = KEY_TAG,
    label: str = "",
) -> bool:
    """Train one arm unless a finished run with the same params exists; log it as a
    child of ``parent_id``. Returns whether it trained. A failure leaves the run FAILED
    with its reason (``tracked_run``) and propagates."""
    from mlflow.entities import Metric

    from regbench import tracking

    if finished(experiment, params, key_tag):
        return False
    t0 = time.time()
    with tracking.tracked_run(
        experiment, run_name, tags={key_tag: params_key(params)}, parent_run_id=parent_id
    ) as run:
        tracking.log_params(run.client, run.run_id, {k: str(v) for k, v in params.items()})
        ts = int(time.time() * 1000)
        metrics = [Metric(k, float(v), ts, step) for step, rec in fit() for k, v in rec.items()]
        metrics.append(Metric("time/fit_s", time.time() - t0, ts, 0))
        for i in range(0, len(metrics), 1000):  # MLflow's per-batch limit
            run.client.log_batch(run.run_id, metrics=metrics[i : i + 1000])
    print(f"[{label or experiment}] {run_name}: {time.time() - t0:.1f}s", flush=True)
    return True

"""Grids in which a diverging run is a result, not a failure: bn_learning_rate (the run
did not train at that rate) and bn_init_insensitivity (chance error at that init scale).

A run whose loss becomes non-finite ends FAILED with a FloatingPointError as its reason
(``regbench.module``, ``regbench.batched.loop``); any other failure still stops the
reproduction, as :meth:`Reproduction.check` does.
"""

from __future__ import annotations

from collections.abc import Sequence

from regbench.report import RunRecord
from regbench.reproductions.base import Reproduction, grid

#: the reason a diverged run fails with (the grid's ``error`` field, the run's error tag)
DIVERGED = "FloatingPointError"


def train_allowing_divergence(
    repro: Reproduction, scale: str, seeds: Sequence[int], n_jobs: int, counts_as: str
) -> str | None:
    """Run (or resume) ``repro``'s grid; runs that diverged are reported (``counts_as``
    says what the analysis takes them for) and left FAILED in the store, every other
    run must complete. Returns the parent run id."""
    base, axes = repro.grid(scale)
    experiment = repro.experiment_name(scale)
    return grid_allowing_divergence(
        repro, experiment, experiment, base, axes, seeds, n_jobs, scale, counts_as
    )


def grid_allowing_divergence(
    repro: Reproduction,
    name: str,
    experiment: str,
    base: Sequence[str],
    axes: dict[str, list],
    seeds: Sequence[int],
    n_jobs: int,
    scale: str,
    counts_as: str,
) -> str | None:
    """One grid ``name`` of ``repro`` in ``experiment``, as :func:`train_allowing_divergence`."""
    results = grid(name, base, axes, list(seeds), n_jobs, experiment, repro.objective)
    diverged = [r for r in results if DIVERGED in str(r.get("error") or "")]
    for r in diverged:
        print(f"[{repro.name}] diverged (counts as {counts_as}): {r['overrides']}")
    return repro.check([r for r in results if r not in diverged], experiment, scale)


def diverged_runs(experiment: str) -> list[RunRecord]:
    """FAILED runs of ``experiment`` whose error is a non-finite loss (a diverged model
    fails alone in a batched group; the grid records it FAILED with that reason)."""
    from regbench.tracking import get_client

    client = get_client()
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    failed = client.search_runs(
        [exp.experiment_id], "attributes.status = 'FAILED'", max_results=5000
    )
    return [
        RunRecord(r.info.run_id, dict(r.data.params), {}, dict(r.data.tags))
        for r in failed
        if "seed" in r.data.params
        and any(w in str(r.data.tags.get("error", "")) for w in ("FloatingPoint", "non-finite"))
    ]

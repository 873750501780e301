"""Sweeps: Optuna studies and grids over Hydra configs, tracked in MLflow.

- :mod:`~regbench.sweep.spec`: the study file (search space or grid, objective, seeds)
- :mod:`~regbench.sweep.space`: the search space's parameters and their Hydra overrides
- :mod:`~regbench.sweep.study`: ``regbench sweep`` and :func:`run_grid` / :func:`run_study`
- :mod:`~regbench.sweep.worker`, :mod:`~regbench.sweep.objective`: trial execution
- :mod:`~regbench.sweep.pool`: the worker processes of a study (spawned, joined)
- :mod:`~regbench.sweep.grid`: grid points, enqueueing, results per point
- :mod:`~regbench.sweep.tracking`: the MLflow parent run and trial tags
- :mod:`~regbench.sweep.multirun`: the Hydra ``-m`` callback (parent run, threads)
- :mod:`~regbench.sweep.launcher`: the Hydra ``-m`` launcher (jobs as batched groups)
- :mod:`~regbench.sweep.batch`: grid trials claimed and trained as batched groups
"""

from regbench.sweep.study import main, run_grid, run_study

__all__ = ["main", "run_grid", "run_study"]

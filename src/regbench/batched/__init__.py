"""Many small models trained as one program (DESIGN.md, "Batched grids").

- :mod:`~regbench.batched.program`: built MLPs stacked along a model axis (padding, masks)
- :mod:`~regbench.batched.optim`: per-model optimizers, schedules, penalties, constraints
- :mod:`~regbench.batched.loop`: the training loop of a group
- :mod:`~regbench.batched.plan`: which runs batch together (and why others do not)
- :mod:`~regbench.batched.runs`: each model its own MLflow run; the entry point
  :func:`~regbench.batched.runs.run_members`
"""

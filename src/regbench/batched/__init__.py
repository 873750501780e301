"""Many small models trained as one program (docs/ARCHITECTURE.md, "Batching").

This package executes what reg/ and nn/ define: the regularizers run as the stacked forms
their own files define (:mod:`regbench.reg.stacked`), each model's draws from its own
streams; nothing here names a regularizer or repeats a formula.

- :mod:`~regbench.batched.signature`: which built models (MLP, residual MLP) share a program
- :mod:`~regbench.batched.program`: built MLPs stacked along a model axis (padding)
- :mod:`~regbench.batched.optim`: per-model optimizers, schedules, gradient clipping
- :mod:`~regbench.batched.loop`: the training loop of a group
- :mod:`~regbench.batched.plan`: which runs batch together (and why others do not)
- :mod:`~regbench.batched.runs`: each model its own MLflow run; the entry point
  :func:`~regbench.batched.runs.run_members`
"""

import os

ENV = "REGBENCH_BATCHED"


def enabled() -> bool:
    """Batched training of grids and of each trial's seeds: on unless ``REGBENCH_BATCHED``
    is 0 (runs one by one, through ``train.run``)."""
    from regbench.errors import ConfigError

    raw = os.environ.get(ENV, "1").strip().lower()
    if raw not in ("0", "1", "true", "false", "on", "off"):
        raise ConfigError(f"{ENV}={raw!r} is not valid; use 1 (on, the default) or 0 (off)")
    return raw in ("1", "true", "on")

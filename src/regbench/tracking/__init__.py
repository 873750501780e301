"""What records a run: the MLflow store and everything a run writes into it.

- :mod:`~regbench.tracking.store`: where the store is, clients, experiments, runs with
  their params, tags and ``config.yaml`` (re-exported here: ``tracking.get_client()``)
- :mod:`~regbench.tracking.epoch_logger`: the Lightning logger (per-epoch metrics,
  batched writes)
- :mod:`~regbench.tracking.artifacts`: a run's ``model.pt`` and ``config.yaml``
- :mod:`~regbench.tracking.lineage`: where a run comes from (git commit, packages, CPU,
  data set inputs)
- :mod:`~regbench.tracking.cost`: ``time/`` metrics (fit time, epoch time, time to target)

Importing this package imports the store only (no Lightning, no torch); the other modules
are imported where they are used. See docs/ARCHITECTURE.md, "Tracking".
"""

from regbench.tracking.store import (
    CONFIG_ID_TAG,
    ERROR_TAG,
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    GROUP_HINT,
    NOTE_TAG,
    PARENT_ENV,
    PARENT_TAG,
    TrackedRun,
    _sqlite_pragmas,
    config_id,
    default_tracking_uri,
    deferred_sigint,
    ensure_experiment,
    flatten,
    get_client,
    install_sqlite_pragmas,
    log_params,
    mlruns_dir,
    run_name,
    tracked_run,
    tracking_uri,
)

__all__ = [
    "CONFIG_ID_TAG",
    "EXPERIMENT_KIND",
    "EXPERIMENT_KIND_TAG",
    "ERROR_TAG",
    "GROUP_HINT",
    "NOTE_TAG",
    "PARENT_ENV",
    "PARENT_TAG",
    "TrackedRun",
    "_sqlite_pragmas",
    "config_id",
    "default_tracking_uri",
    "deferred_sigint",
    "ensure_experiment",
    "flatten",
    "get_client",
    "install_sqlite_pragmas",
    "log_params",
    "mlruns_dir",
    "run_name",
    "tracked_run",
    "tracking_uri",
]

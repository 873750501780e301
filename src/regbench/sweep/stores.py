"""A sweep keeps its state in two stores that must agree: Optuna's study (``--storage``,
default ``mlruns/optuna.db``) and MLflow's runs (``MLFLOW_TRACKING_URI``, default
``mlruns/mlflow.db``). A finished trial records the MLflow run of each seed
(``mlflow_run_ids``); "reruns reuse finished runs" trusts that those runs exist.

They stop agreeing when a user points ``MLFLOW_TRACKING_URI`` at a new database or a
team's server, deletes ``mlflow.db``, or moves ``optuna.db`` between machines:

- **trials without runs** (a study whose runs are not in this MLflow store): such a
  trial does not count as done. A grid trains its point again into this store, so its
  report is built from this store's runs only; an Optuna study (whose sampler learns
  from its finished trials) stops with one line saying what disagrees and how to fix it.
- **runs without trials** (a new study, an MLflow store that holds runs of a study of
  that name): every point is trained again; a note says so. The report keeps the newest
  run per point and seed, i.e. this study's.
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from regbench import tracking
from regbench.errors import ConfigError
from regbench.sweep.objective import ROLE_TAG, STUDY_TAG

RUN_IDS_ATTR = "mlflow_run_ids"  # trial user attr: {seed: MLflow run id}
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def runs_of_study(study_name: str, client=None, experiment: str | None = None) -> set[str]:
    """Ids of the child runs in the current MLflow store tagged as the study's, in
    ``experiment`` (a sweep's runs share one) or, not given, in any; the parent aside."""
    client = client or tracking.get_client()
    if experiment is None:
        exp_ids = [e.experiment_id for e in client.search_experiments()]
    else:
        exp = client.get_experiment_by_name(experiment)
        exp_ids = [exp.experiment_id] if exp is not None else []
    found: set[str] = set()
    token = None
    while exp_ids:
        page = client.search_runs(
            exp_ids,
            f"tags.`{STUDY_TAG}` = '{study_name}'",
            max_results=5000,
            page_token=token,
        )
        found |= {r.info.run_id for r in page if r.data.tags.get(ROLE_TAG) != "parent"}
        token = page.token
        if not token:
            break
    return found


def trials_without_runs(
    study: optuna.Study,
    study_name: str,
    present: set[str] | None = None,
    experiment: str | None = None,
) -> list[optuna.trial.FrozenTrial]:
    """The finished trials of ``study`` whose MLflow runs are not all in the current store
    (``present``: the study's run ids there, else looked up in ``experiment``)."""
    finished = [
        t
        for t in study.get_trials(deepcopy=False, states=_FINISHED)
        if t.user_attrs.get(RUN_IDS_ATTR)
    ]
    if not finished:
        return []
    present = runs_of_study(study_name, experiment=experiment) if present is None else present
    return [t for t in finished if not set(t.user_attrs[RUN_IDS_ATTR].values()) <= present]


def check_agreement(
    study: optuna.Study, study_name: str, is_grid: bool, storage_url: str, client, experiment: str
) -> tuple[set[int], list[str]]:
    """Compare the two stores before a sweep starts. Returns the numbers of the finished
    trials to treat as not done (a grid's points to train again) and notes to print;
    raises :class:`ConfigError` for an Optuna study with trials whose runs are missing."""
    present = runs_of_study(study_name, client, experiment)
    stale = trials_without_runs(study, study_name, present)
    uri = tracking.tracking_uri()
    notes = []
    if stale and not is_grid:
        raise ConfigError(
            f"study {study_name!r} in {storage_url} has {len(stale)} finished trial(s) whose "
            f"MLflow runs are not in {uri} (another tracking store?); set "
            "MLFLOW_TRACKING_URI to the store that holds them, or start a new study with "
            "--study NEW_NAME"
        )
    if stale:
        notes.append(
            f"{len(stale)} finished trial(s) of grid {study_name!r} in {storage_url} have no "
            f"runs in {uri} (another MLflow store): they do not count as done here"
        )
    elif present and not study.get_trials(deepcopy=False):
        notes.append(
            f"{uri} holds {len(present)} run(s) of a study {study_name!r} that {storage_url} "
            "does not have: training every point again (the report uses the newest runs)"
        )
    return {t.number for t in stale}, notes

"""A sweep's two stores must agree (issue 19): the Optuna study (optuna.db) and the MLflow
runs (MLFLOW_TRACKING_URI). Switching the tracking store under an existing study, or
starting a new study over an old store, gives a correct rerun or one line, never a
traceback and never results built from another store's runs."""

from __future__ import annotations

import pytest
import yaml

from conftest import TINY
from regbench.cli import main
from regbench.errors import ConfigError
from regbench.sweep import run_grid, run_study
from regbench.sweep.spec import parse_spec
from regbench.tracking import get_client

BASE = [*TINY, "trainer.max_epochs=1", "data.n_train=300", "data.n_test=100"]
GRID = {"model.width": [8, 16]}


def _grid(experiment: str, optuna_db) -> list[dict]:
    return run_grid(
        "g", BASE, GRID, [0], experiment_name=experiment, storage=f"sqlite:///{optuna_db}",
        verbose=False,
    )  # fmt: skip


def _in_store(run_ids) -> bool:
    """Every run id is a FINISHED run of the current MLflow store."""
    client = get_client()
    return all(client.get_run(i).info.status == "FINISHED" for i in run_ids)


def _use_store(monkeypatch, path) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{path}")


def test_a_study_whose_runs_are_in_another_store_trains_its_points_again(
    experiment, tmp_path, monkeypatch, capsys
):
    optuna_db = tmp_path / "optuna.db"
    _use_store(monkeypatch, tmp_path / "a.db")
    first = _grid(experiment, optuna_db)
    assert [r["state"] for r in first] == ["COMPLETE"] * 2 and _in_store(r["run_id"] for r in first)

    _use_store(monkeypatch, tmp_path / "b.db")  # a fresh tracking store, the same study
    capsys.readouterr()
    second = _grid(experiment, optuna_db)
    out = capsys.readouterr().out
    assert (
        "note: 2 finished trial(s) of grid 'g' in sqlite:///" in out
        and f"have no runs in sqlite:///{tmp_path / 'b.db'} (another MLflow store)" in out
    )
    assert [r["state"] for r in second] == ["COMPLETE"] * 2
    assert _in_store(r["run_id"] for r in second)  # results name runs of this store only
    assert not {r["run_id"] for r in first} & {r["run_id"] for r in second}

    _use_store(monkeypatch, tmp_path / "a.db")  # back: a's trials count again, nothing reruns
    third = _grid(experiment, optuna_db)
    assert [r["run_id"] for r in third] == [r["run_id"] for r in first]
    assert third == first


def test_runs_without_their_study_are_trained_again_into_the_new_study(
    experiment, tmp_path, monkeypatch, capsys
):
    _use_store(monkeypatch, tmp_path / "a.db")
    first = _grid(experiment, tmp_path / "optuna.db")
    capsys.readouterr()
    second = _grid(experiment, tmp_path / "new-optuna.db")  # optuna.db deleted or moved
    assert (
        f"note: sqlite:///{tmp_path / 'a.db'} holds 2 run(s) of a study 'g' that "
        in capsys.readouterr().out
    )
    assert [r["state"] for r in second] == ["COMPLETE"] * 2 and _in_store(
        r["run_id"] for r in second
    )
    assert not {r["run_id"] for r in first} & {r["run_id"] for r in second}


def test_an_optuna_study_whose_runs_are_in_another_store_stops_with_one_line(
    experiment, tmp_path, monkeypatch, capsys
):
    """A sampler learns from its finished trials, so they cannot just be rerun: one line
    says which stores disagree and what to do, before any run of the new store."""
    raw = {
        "name": "tpe",
        "experiment_name": experiment,
        "objective": {"metric": "val/acc"},
        "seeds": [0],
        "n_trials": 1,
        "overrides": BASE,
        "space": {"model.width": [8, 16]},
    }
    spec_file = tmp_path / "tpe.yaml"
    spec_file.write_text(yaml.safe_dump(raw))
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    _use_store(monkeypatch, tmp_path / "a.db")
    run_study(parse_spec(raw, "tpe"), storage=url, verbose=False)

    _use_store(monkeypatch, tmp_path / "b.db")
    with pytest.raises(ConfigError, match="finished trial"):
        run_study(parse_spec(raw, "tpe"), storage=url, verbose=False)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", str(spec_file), "--storage", url])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"regbench sweep: study 'tpe' in {url} has 1 finished trial(s) whose MLflow runs "
        f"are not in sqlite:///{tmp_path / 'b.db'} (another tracking store?); set "
        "MLFLOW_TRACKING_URI to the store that holds them, or start a new study with "
        "--study NEW_NAME"
    ]
    client = get_client()
    exp = client.get_experiment_by_name(experiment)
    assert exp is None or client.search_runs([exp.experiment_id]) == []  # b has no run

"""Sweeps end to end on real SQLite storages (Optuna and MLflow): grids, failures,
pruning, two worker processes, and a SIGKILLed sweep that is resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from conftest import TINY, runs_of
from regbench.errors import ConfigError
from regbench.sweep import run_grid, run_study
from regbench.sweep.spec import parse_spec


def study_spec(experiment: str, **raw) -> object:
    base = {
        "name": "s",
        "experiment_name": experiment,
        "objective": {"metric": "val/acc"},
        "seeds": [0],
        "overrides": [*TINY, "trainer.max_epochs=1"],
    }
    return parse_spec({**base, **raw}, "s")


def family(experiment: str):
    """(parent run, child runs) of the experiment's single sweep."""
    runs = runs_of(experiment)
    [parent] = [r for r in runs if r.data.tags.get("sweep.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(runs) - 1  # no stray runs outside the family
    return parent, children


def test_run_grid_runs_exactly_its_grid_resumes_and_extends(experiment, tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    blocks = [["linear", "norm", "act"], ["linear", "dropout", "norm", "act"]]
    grid = {"model.block": blocks, "model.dropout": [0.25]}
    base = [*TINY, "trainer.max_epochs=1", "model.norm=batch"]
    out = run_grid("g", base, grid, [0, 1], experiment_name=experiment, storage=url, verbose=False)
    assert [(r["point"]["model.block"], r["seed"]) for r in out] == [
        (blocks[0], 0),
        (blocks[0], 1),
        (blocks[1], 0),
        (blocks[1], 1),
    ]
    assert [r["state"] for r in out] == ["COMPLETE"] * 4
    assert out[2]["overrides"] == ["model.block=[linear,dropout,norm,act]", "model.dropout=0.25"]
    parent, children = family(experiment)
    assert parent.info.status == "FINISHED" and len(children) == 4
    by_id = {c.info.run_id: c for c in children}
    for r in out:
        child = by_id[r["run_id"]]
        assert child.info.status == "FINISHED"
        assert child.data.params["model.block"] == str(r["point"]["model.block"])
        assert (child.data.params["seed"], child.data.tags["sweep.seed"]) == (str(r["seed"]),) * 2
        assert child.data.metrics["test/acc"] == pytest.approx(r["metrics"]["test/acc"])
    study = optuna.load_study(study_name="g", storage=url)
    assert sorted((t.state, t.params["model.block"]) for t in study.trials) == [
        (TrialState.COMPLETE, "[linear,dropout,norm,act]"),
        (TrialState.COMPLETE, "[linear,norm,act]"),
    ]

    again = run_grid(
        "g", base, grid, [0, 1], experiment_name=experiment, storage=url, verbose=False
    )
    assert again == out  # nothing reran: same metrics, same MLflow runs
    bigger = {**grid, "model.dropout": [0.25, 0.5]}
    more = run_grid(
        "g", base, bigger, [0, 1], experiment_name=experiment, storage=url, verbose=False
    )
    assert len(more) == 8 and [r["state"] for r in more] == ["COMPLETE"] * 8
    assert {r["run_id"] for r in out} < {r["run_id"] for r in more}
    assert len(optuna.load_study(study_name="g", storage=url).trials) == 4
    parent2, children = family(experiment)
    assert parent2.info.run_id == parent.info.run_id and len(children) == 8


def test_failing_settings_are_recorded_and_the_sweep_goes_on(
    experiment, tmp_path, capsys, monkeypatch
):
    # One by one, a failing seed stops its point's later seeds; batched, every seed runs
    # and fails alone (tests/test_batched.py checks that path).
    monkeypatch.setenv("REGBENCH_BATCHED", "0")
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    settings = {
        "ok": {"optim.lr": 0.05},
        "nan": {"optim.lr": 1.0e30},
        "bad": {"model.norm": "banana"},
    }
    raw = {
        "sampler": "grid",
        "seeds": [0, 1],
        "overrides": [*TINY, "trainer.max_epochs=1", "optim=sgd"],
        "space": {"setting": {"type": "categorical", "choices": settings}},
    }
    # A value that cannot be built is bad input: refused before the study or any run.
    with pytest.raises(ConfigError, match="space.setting=bad: model.norm='banana' is not a"):
        run_study(study_spec(experiment, **raw), storage=url)
    assert runs_of(experiment) == []
    del settings["bad"]
    spec = study_spec(experiment, **raw)
    study = run_study(spec, storage=url)
    printed = capsys.readouterr().out
    trials = {t.params["setting"]: t for t in study.trials}
    assert trials["ok"].state == TrialState.COMPLETE
    assert trials["nan"].state == TrialState.FAIL
    assert trials["nan"].user_attrs["fail_reason"].startswith("seed 0: FloatingPointError")
    assert "FAIL" in printed and "FloatingPointError" in printed  # progress line and table
    parent, children = family(experiment)
    assert parent.info.status == "FINISHED"
    status = {c.info.run_id: c.info.status for c in children}
    assert sorted(status.values()) == ["FAILED", "FINISHED", "FINISHED"]
    [failed] = trials["nan"].user_attrs["mlflow_run_ids"].values()
    assert status[failed] == "FAILED"
    # A rerun retries the failed points only.
    study = run_study(spec, storage=url, verbose=False)
    states = sorted((t.params["setting"], t.state.name) for t in study.trials)
    assert states == [("nan", "FAIL"), ("nan", "FAIL"), ("ok", "COMPLETE")]


def test_median_pruner_prunes_a_hopeless_trial(experiment, tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    spec = study_spec(
        experiment,
        objective={"metric": "val/loss"},
        sampler="grid",
        pruner={"kind": "median", "n_startup_trials": 2, "n_warmup_steps": 0},
        overrides=[*TINY, "trainer.max_epochs=3", "optim.lr=0.01"],
        space={"optim.lr": [0.01, 0.003, 1.0e-7]},
    )
    study = run_study(spec, storage=url, verbose=False)
    state = {t.params["optim.lr"]: t.state for t in study.trials}
    assert state == {0.01: TrialState.COMPLETE, 0.003: TrialState.COMPLETE, 1e-7: TrialState.PRUNED}
    pruned = next(t for t in study.trials if t.state == TrialState.PRUNED)
    assert list(pruned.intermediate_values) == [0]  # stopped after its first epoch
    _, children = family(experiment)
    [run] = [c for c in children if c.data.tags["sweep.trial"] == str(pruned.number)]
    assert run.info.status == "KILLED" and run.data.tags["sweep.pruned"] == "true"


def test_two_workers_finish_exactly_n_trials(experiment, tmp_path, capfd):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    spec = study_spec(
        experiment,
        sampler={"kind": "random", "seed": 0},
        n_trials=4,
        seeds=[0, 1],
        space={
            "optim.lr": {"type": "float", "low": 1e-3, "high": 0.1, "log": True},
            "model.dropout": [0.0, 0.2],
        },
    )
    import matplotlib

    def style():  # the backend is set to Agg for the plots, on purpose
        return {k: v for k, v in matplotlib.rcParams.items() if not k.startswith("backend")}

    before = style()
    study = run_study(spec, storage=url, n_jobs=2)
    # the study's Optuna plots (drawn in this process) leave the style as it was: Optuna's
    # plot functions switch to ggplot, which would restyle every later figure here
    assert style() == before
    printed = capfd.readouterr().out
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
    assert "[w0] trial" in printed and "[w1] trial" in printed  # both processes worked
    parent, children = family(experiment)
    assert parent.info.status == "FINISHED" and len(children) == 8
    assert all(c.info.status == "FINISHED" for c in children)
    by_id = {c.info.run_id: c for c in children}
    for t in study.trials:
        ids = t.user_attrs["mlflow_run_ids"]
        assert sorted(ids) == ["0", "1"]
        assert {by_id[i].data.tags["sweep.trial"] for i in ids.values()} == {str(t.number)}
        assert t.value == pytest.approx(
            sum(by_id[i].data.metrics["val/acc"] for i in ids.values()) / 2
        )
    from regbench.tracking import get_client

    plots = [a.path for a in get_client().list_artifacts(parent.info.run_id, "plots")]
    assert "plots/optimization_history.png" in plots


def test_sigkilled_sweep_resumes_to_n_complete_trials(experiment, tmp_path, monkeypatch):
    # Seeds one by one, so that the kill lands between them (batched, a trial's seeds
    # train together; tests/test_batched.py kills and resumes a batched grid).
    monkeypatch.setenv("REGBENCH_BATCHED", "0")
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    raw = {
        "name": "k",
        "experiment_name": experiment,
        "objective": {"metric": "val/acc"},
        "seeds": [0, 1],
        "n_trials": 2,
        "sampler": {"kind": "random", "seed": 1},
        "heartbeat": {"interval": 1, "grace_period": 2},
        # 30 epochs: a run must stay RUNNING longer than one poll below, even on a loaded
        # machine (at 2 epochs a run could start and finish between two polls)
        "overrides": [*TINY, "trainer.max_epochs=30"],
        "space": {"optim.lr": {"type": "float", "low": 1e-3, "high": 0.1, "log": True}},
    }
    path = tmp_path / "k.yaml"
    path.write_text(yaml.safe_dump(raw))
    log = open(tmp_path / "sweep.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "regbench.cli", "sweep", str(path), "--storage", url],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:  # kill while trial 1 trains its second seed, after trial 0 completed
        deadline = time.time() + 300
        while True:
            assert proc.poll() is None and time.time() < deadline, (
                tmp_path / "sweep.log"
            ).read_text()
            running = [
                r
                for r in runs_of(experiment)
                if r.info.status == "RUNNING"
                and r.data.tags.get("sweep.seed") == "1"
                and r.data.tags.get("sweep.trial") == "1"
            ]
            if running:
                break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed_run = running[0].info.run_id
    before = optuna.load_study(study_name="k", storage=url).trials
    assert [t.state for t in before] == [TrialState.COMPLETE, TrialState.RUNNING]
    seed0_run = before[1].user_attrs["mlflow_run_ids"]["0"]

    study = run_study(parse_spec(raw, "k"), storage=url, verbose=False)
    trials = study.trials
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 2
    assert trials[0].value == before[0].value  # the completed trial was kept
    assert trials[1].state == TrialState.FAIL and "fail_reason" not in trials[1].user_attrs
    retry = trials[2]
    assert retry.system_attrs["failed_trial"] == 1 and retry.params == before[1].params
    assert retry.user_attrs["mlflow_run_ids"]["0"] == seed0_run  # its finished seed reused
    runs = {r.info.run_id: r for r in runs_of(experiment)}
    assert not [r for r in runs.values() if r.info.status == "RUNNING"]
    assert runs[killed_run].info.status == "KILLED"
    assert runs[retry.user_attrs["mlflow_run_ids"]["1"]].info.status == "FINISHED"
    parent, children = family(experiment)
    assert parent.info.status == "FINISHED"
    assert sorted(c.info.status for c in children) == ["FINISHED"] * 4 + ["KILLED"]


def test_trial_tables_show_keys_as_people_read_them():
    from regbench.sweep.study import _count
    from regbench.sweep.tracking import shown_key

    assert shown_key("+experiment/vs_placement") == "vs_placement"
    assert shown_key("model.width") == "model.width" and shown_key("optim") == "optim"
    assert (_count(1, "point"), _count(3, "point")) == ("1 point", "3 points")

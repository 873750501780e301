"""Study files: validation errors name the key; values become Hydra overrides; every
file in sweeps/ composes for every choice (no training here: fast)."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest

from regbench.errors import ConfigError
from regbench.paths import ROOT
from regbench.sweep.spec import hydra_value, load_spec, parse_spec
from regbench.sweep.study import _experiment, main, run_study

BASE = {
    "objective": {"metric": "val/acc"},
    "n_trials": 3,
    "space": {"optim.lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True}},
}


def spec(**changes):
    raw = {**BASE, **changes}
    return parse_spec({k: v for k, v in raw.items() if v is not None}, "t")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n_trial": 3}, "study key='n_trial' is not valid; choose one of:"),
        ({"objective": {"metric": "acc"}}, "objective.metric='acc' must start with one of"),
        (
            {"objective": {"metric": "val/acc", "direction": "up"}},
            "objective.direction='up' is not valid; choose one of: maximize, minimize",
        ),
        ({"seeds": [0, 0]}, "seeds=[0, 0] must be a count or a list of distinct integers"),
        ({"seeds": 0}, "seeds=0 is not valid"),
        ({"aggregate": "sum"}, "aggregate='sum' is not valid; choose one of: max, mean, median"),
        ({"sampler": "cmaes"}, "sampler.kind='cmaes' is not valid; choose one of: grid, random"),
        ({"pruner": {"kind": "patient"}}, "pruner.kind='patient' is not valid"),
        ({"n_trials": None}, "give n_trials or timeout"),
        ({"n_trials": 0}, "n_trials=0 is not valid"),
        (
            {"space": {"optim.lr": {"type": "float", "low": 0.1, "high": 0.01}}},
            "space.optim.lr: low=0.1 must be below high=0.01",
        ),
        (
            {"space": {"optim.lr": {"type": "float", "low": 0, "high": 1, "log": True}}},
            "space.optim.lr: low=0 must be > 0 with log: true",
        ),
        ({"space": {"optim.lr": {"type": "float", "high": 1}}}, "space.optim.lr.low is missing"),
        (
            {"space": {"optim.lr": {"type": "float", "low": "x", "high": 1}}},
            "space.optim.lr.low='x' is not a number",
        ),
        (
            {"space": {"model.width": {"type": "int", "low": 1.5, "high": 8}}},
            "space.model.width: low=1.5 and high=8 must be integers",
        ),
        (
            {"space": {"model.width": {"type": "integer", "low": 1, "high": 8}}},
            "space.model.width.type='integer' is not valid; choose one of: categorical, float, int",
        ),
        (
            {"space": {"model.width": {"type": "int", "low": 1, "high": 8, "lg": True}}},
            "space.model.width key='lg' is not valid",
        ),
        ({"space": {"model.width": []}}, "space.model.width.choices must be a non-empty list"),
        ({"space": {"model.width": [16, 16]}}, "space.model.width.choices=[16, 16] has duplicates"),
        (
            {"space": {"p": {"type": "categorical", "choices": {"a": "model.width"}}}},
            "space.p.choices.a must map config keys to values",
        ),
        ({"sampler": "grid"}, "space.optim.lr: sampler grid needs categorical choices"),
        (
            {"sampler": "grid", "space": {"model.width": [8, 16]}},
            "n_trials=3 but the grid has 2 points",
        ),
        (
            {"heartbeat": {"interval": 5, "grace_period": 5}},
            "heartbeat.grace_period=5 must exceed heartbeat.interval=5",
        ),
    ],
)
def test_bad_study_files_name_the_key(changes, message):
    with pytest.raises(ConfigError) as e:
        spec(**changes)
    assert message in str(e.value)


def test_values_become_hydra_overrides():
    assert hydra_value(["linear", "norm", "act"]) == "[linear,norm,act]"
    assert [hydra_value(v) for v in (True, None, 3, 1e-05, 0.5, "adamw")] == [
        "true",
        "null",
        "3",
        "1e-05",
        "0.5",
        "adamw",
    ]
    s = spec(
        sampler="grid",
        n_trials=None,
        space={
            "model.block": [["linear", "norm", "act"], ["linear", "dropout", "norm", "act"]],
            "where": {
                "type": "categorical",
                "choices": {
                    "head": {"model.head_dropout": "${model.dropout}"},
                    "none": ["model.dropout=0.0"],
                },
            },
        },
    )
    assert s.n_trials == 4 and s.is_grid
    points = s.grid_points()
    assert points[0] == {"model.block": "[linear,norm,act]", "where": "head"}
    assert s.point_overrides(points[1]) == ["model.block=[linear,norm,act]", "model.dropout=0.0"]
    assert s.point_overrides(points[2]) == [
        "model.block=[linear,dropout,norm,act]",
        "model.head_dropout=${model.dropout}",
    ]


def test_yaml_exponent_without_dot_and_seed_count():
    s = spec(seeds=3, space={"optim.lr": {"type": "float", "low": "1e-4", "high": "1e-1"}})
    assert s.seeds == [0, 1, 2] and s.space[0].low == pytest.approx(1e-4)
    assert s.direction == "maximize"  # default for an accuracy
    assert spec(objective={"metric": "val/loss"}).direction == "minimize"
    assert s.aggregate_values([0.5, 0.7, 0.9]) == pytest.approx(0.7)


def test_fingerprint_allows_more_grid_points_and_trials_only():
    grid = dict(sampler="grid", n_trials=None)
    a = spec(**grid, space={"model.width": [8, 16]})
    b = spec(**grid, space={"model.width": [8, 16, 32]})
    c = spec(**grid, space={"model.width": [8, 16]}, overrides=["optim=sgd"])
    assert a.fingerprint([]) == b.fingerprint([]) != c.fingerprint([])
    assert a.fingerprint([]) != a.fingerprint(["trainer.max_epochs=1"])
    assert spec(n_trials=3).fingerprint([]) == spec(n_trials=30).fingerprint([])


@pytest.mark.parametrize("path", sorted((ROOT / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_every_study_file_composes_for_every_choice(path: Path):
    s = load_spec(path)
    assert _experiment(s, s.name, []) == s.experiment_name
    if s.is_grid:
        assert s.n_trials == math.prod(len(p.choices) for p in s.space)


def test_required_studies_exist():
    tpe = load_spec(ROOT / "sweeps" / "mlp_tpe.yaml")
    assert tpe.sampler["kind"] == "tpe" and tpe.n_trials == 20 and len(tpe.seeds) == 2
    assert {p.key for p in tpe.space} == {"optim.lr", "optim.weight_decay", "model.dropout"}
    grid = load_spec(ROOT / "sweeps" / "dropout_placement_grid.yaml")
    assert grid.is_grid and len(grid.seeds) >= 2
    blocks = {o for p in grid.space for b in p.bundles.values() for o in b if "block" in o}
    assert blocks == {"model.block=[linear,dropout,norm,act]", "model.block=[linear,norm,act]"}


def test_unknown_config_key_fails_before_any_trial(tmp_path, capsys):
    f = tmp_path / "bad.yaml"
    f.write_text("objective: {metric: val/acc}\nn_trials: 2\nspace:\n  model.widht: [8, 16]\n")
    with pytest.raises(SystemExit) as e:
        main([str(f), "--storage", f"sqlite:///{tmp_path / 'o.db'}"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "space.model.widht=8" in err and "widht" in err
    assert not (tmp_path / "o.db").exists()  # nothing was created


def test_resuming_with_other_settings_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'o.db'}"
    s = spec()
    optuna.create_study(study_name="t", storage=url).set_user_attr(
        "regbench.fingerprint", s.fingerprint(["trainer.max_epochs=1"])
    )
    with pytest.raises(ConfigError) as e:
        run_study(s, storage=url, cli_overrides=["trainer.max_epochs=2"])
    assert "study 't' in" in str(e.value) and "--study NEW_NAME" in str(e.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sampler": {"kind": "tpe", "n_startup": 5}}, "unexpected keyword argument 'n_startup'"),
        ({"pruner": {"kind": "median", "n_warmup_steps": -1}}, "pruner={'kind': 'median'"),
    ],
)
def test_bad_sampler_or_pruner_arguments_fail_before_any_trial(tmp_path, changes, message):
    with pytest.raises(ConfigError) as e:
        run_study(spec(**changes), storage=f"sqlite:///{tmp_path / 'o.db'}")
    assert message in str(e.value)
    assert not (tmp_path / "o.db").exists()

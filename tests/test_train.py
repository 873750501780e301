"""The foundation: a tracked, reproducible training run."""

from __future__ import annotations

import pytest

from conftest import runs_of
from regbench.errors import ConfigError
from regbench.train import run


def test_run_logs_finished_run_with_metrics_tags_and_config(tiny, experiment):
    cfg = tiny("trainer.max_epochs=3", "seed=7", experiment_name=experiment)
    out = run(cfg, ["model.width=32", "trainer.max_epochs=3", "seed=7"])
    [r] = runs_of(experiment)
    assert r.info.status == "FINISHED"
    assert r.info.run_name == "mlp-w32-ep3-s7"
    client = __import__("regbench.tracking", fromlist=["x"]).get_client()
    for key in ("train/loss", "train/acc", "val/loss", "val/acc"):
        hist = client.get_metric_history(r.info.run_id, key)
        assert [m.step for m in hist] == [0, 1, 2], key
    assert r.data.metrics["test/acc"] == pytest.approx(out["test/acc"])
    assert 0.0 <= out["test/acc"] <= 1.0
    assert r.data.params["model.width"] == "32"
    assert r.data.params["seed"] == "7"
    for tag in (
        "git.commit",
        "git.dirty",
        "version.python",
        "version.torch",
        "version.lightning",
        "version.mlflow",
        "device",
        "data.fingerprint",
    ):
        assert r.data.tags.get(tag), tag
    arts = [a.path for a in client.list_artifacts(r.info.run_id)]
    assert "config.yaml" in arts


def test_same_seed_is_bit_identical_and_other_seed_differs(tiny, experiment):
    a = run(tiny("seed=3", experiment_name=experiment))
    b = run(tiny("seed=3", experiment_name=experiment))
    c = run(tiny("seed=4", experiment_name=experiment))
    keys = ["train/loss", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc"]
    assert [a[k] for k in keys] == [b[k] for k in keys]
    assert a["train/loss"] != c["train/loss"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "model.norm=banana",
            "model.norm='banana' is not a known norm; "
            "choose one of: batch, group, instance, layer, none",
        ),
        ("model.act=banana", "model.act='banana'"),
        ("model.block=[linear,banana]", "model.block='banana'"),
        ("model.dropout=1.0", "model.dropout=1.0 is out of range; allowed: [0, 1)"),
        ("model.dropout=-0.1", "model.dropout=-0.1"),
        ("model.width=0", "model.width=0 is not valid"),
        ("model.depth=0", "model.depth=0 is not valid"),
        ("data.label_noise=1.5", "data.label_noise=1.5 is out of range; allowed: [0, 1]"),
        ("data.name=banana", "data.name='banana' is not a known dataset"),
    ],
)
def test_bad_input_fails_before_training_naming_the_key(tiny, experiment, override, message):
    with pytest.raises(ConfigError) as e:
        run(tiny(override, experiment_name=experiment))
    assert message in str(e.value)
    assert runs_of(experiment) == []


def test_missing_vision_files_name_the_path(tiny, experiment, tmp_path):
    from regbench.config import compose

    cfg = compose(
        [
            "data=cifar10",
            f"data.data_dir={tmp_path}",
            "data.download=false",
            f"experiment_name={experiment}",
        ]
    )
    with pytest.raises(ConfigError) as e:
        run(cfg)
    assert str(tmp_path) in str(e.value) and "data.download=false" in str(e.value)
    assert runs_of(experiment) == []


def test_error_during_training_marks_run_failed(tiny, experiment):
    # A learning rate this large makes the loss overflow: the run must end FAILED.
    with pytest.raises(FloatingPointError):
        run(tiny("optim=sgd", "optim.lr=1e30", experiment_name=experiment))
    [r] = runs_of(experiment)
    assert r.info.status == "FAILED"
    assert "FloatingPointError" in r.data.tags["error"]

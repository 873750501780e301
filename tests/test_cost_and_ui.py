"""Per-run cost metrics (time/...) and what the MLflow UI reads: the experiment kind,
dataset inputs per split, the parameter count and regularizer list as params."""

from __future__ import annotations

import json

import pytest

from conftest import runs_of
from regbench.errors import ConfigError
from regbench.tracking import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, get_client
from regbench.train import build, run


def test_cost_metrics_target_reached_and_ui_fields(tiny, experiment):
    # train/acc >= 0 holds after the first epoch: the target is reached at epoch 0
    target = ["trainer.target_metric=train/acc", "trainer.target_value=0.0"]
    cfg = tiny(*target, "reg=[l2]", experiment_name=experiment)
    out = run(cfg)
    [r] = runs_of(experiment)
    m = r.data.metrics
    assert m["time/to_target_epoch"] == 0.0
    # the end of the first of 2 epochs: within the span of the epochs
    assert 0 < m["time/to_target_s"] <= m["time/epoch_s"] * 2 + 1e-9
    assert m["time/epoch_s"] * 2 <= m["time/fit_s"]  # 2 epochs inside the fit call
    assert out["time/fit_s"] == pytest.approx(m["time/fit_s"])
    assert r.data.tags["time.target_reached"] == "true"
    _, _, module = build(cfg)
    n = sum(p.numel() for p in module.parameters())
    assert r.data.params["model.params"] == r.data.tags["model.params"] == str(n)
    assert r.data.params["reg"] == "[l2]"

    exp = get_client().get_experiment_by_name(experiment)
    assert exp.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND == "custom_model_development"
    inputs = {d.tags[0].value: d.dataset for d in r.inputs.dataset_inputs}
    assert set(inputs) == {"train", "val", "test"}
    train = inputs["train"]
    assert (train.name, train.digest) == ("mnist1d", r.data.tags["data.fingerprint"])
    assert train.source_type == "code"
    assert json.loads(train.source)["tags"]["n_train"] == 600
    profile = json.loads(inputs["test"].profile)
    assert profile["features_shape"] == [200, 40] and profile["num_rows"] == 200


def test_unreached_target_logs_no_time_to_target(tiny, experiment):
    target = ["trainer.target_metric=val/acc", "trainer.target_value=1.5"]  # acc <= 1
    run(tiny(*target, "trainer=fast", experiment_name=experiment))
    [r] = runs_of(experiment)
    assert "time/to_target_s" not in r.data.metrics and "time/fit_s" in r.data.metrics
    assert r.data.tags["time.target_reached"] == "false"
    assert r.data.params["reg"] == "[]"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["trainer.target_metric=acc"],
            "trainer.target_metric='acc' is not valid; it must be a per-epoch metric name "
            "starting with train/ or val/ (e.g. val/acc)",
        ),
        (
            ["trainer.target_metric=val/acc"],
            "trainer.target_value=None is not valid; trainer.target_metric=val/acc needs a "
            "number to reach",
        ),
        (
            ["trainer.target_metric=val/acc", "trainer.target_value=0.5", "trainer.target_mode=up"],
            "trainer.target_mode='up' is not valid; choose one of: max, min",
        ),
    ],
)
def test_bad_target_fails_before_training(tiny, overrides, message):
    with pytest.raises(ConfigError) as e:
        build(tiny(*overrides))
    assert str(e.value) == message

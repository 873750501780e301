"""The epoch logger: one store round trip per epoch, the same history whether a writer
thread or the training thread writes it, and writer errors that reach the caller."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException

from regbench.tracking import MlflowEpochLogger, get_client, tracked_run
from regbench.train import run


def _history(run_id: str) -> dict[str, list]:
    client = get_client()
    keys = client.get_run(run_id).data.metrics
    # time/ metrics are wall times (cost): the only values two identical runs may not share
    return {k: client.get_metric_history(run_id, k) for k in keys if not k.startswith("time/")}


def test_an_epoch_is_one_batch_and_background_writes_the_same_history(tiny, experiment):
    sync = _history(run(tiny("logger.background=false", experiment_name=experiment))["run_id"])
    bg = _history(run(tiny("logger.background=true", experiment_name=experiment))["run_id"])
    assert {k: [(m.step, m.value) for m in v] for k, v in sync.items()} == {
        k: [(m.step, m.value) for m in v] for k, v in bg.items()
    }
    for hist in (sync, bg):
        for epoch in (0, 1):  # val/* and train/* of an epoch went in one log_batch call
            stamps = {
                m.timestamp for k in ("train/loss", "val/acc") for m in hist[k] if m.step == epoch
            }
            assert len(stamps) == 1, (epoch, stamps)


def test_a_writer_error_is_raised_by_finalize(experiment):
    with (
        pytest.raises(MlflowException, match="active"),
        tracked_run(experiment, "writer-error") as tracked,
    ):
        logger = MlflowEpochLogger(tracked, background=True)
        get_client().delete_run(tracked.run_id)  # the store now refuses new metrics
        logger.log_metrics({"train/loss": 1.0, "epoch": 0})
        logger.finalize("success")


def test_every_n_epochs_logs_those_epochs_and_the_last(tiny, experiment):
    out = run(tiny("trainer.max_epochs=5", "logger.every_n_epochs=2", experiment_name=experiment))
    hist = _history(out["run_id"])
    for key in ("train/loss", "train/acc", "val/loss", "val/acc"):
        assert [m.step for m in hist[key]] == [1, 3, 4], key
    assert "test/acc" in hist and hist["train/loss"][-1].value == out["train/loss"]

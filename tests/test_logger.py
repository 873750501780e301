"""The epoch logger: an epoch's metrics in one batch with one time stamp, writes at most
every ``logger.flush_every_s`` seconds with the same history, the same history whether a
writer thread or the training thread writes it, and writer errors that reach the caller."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
from mlflow.exceptions import MlflowException

from regbench.tracking import get_client, tracked_run
from regbench.tracking.epoch_logger import MlflowEpochLogger
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


class _Peek(pl.Callback):
    """How many val/acc points the store holds at each epoch's end, during training."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def on_train_epoch_end(self, trainer, module) -> None:
        history = get_client().get_metric_history(trainer.logger.version, "val/acc")
        self.seen.append(len(history))


def test_flush_every_s_writes_epochs_later_with_the_same_history(tiny, experiment):
    peeks = {0: _Peek(), 3600: _Peek()}
    runs = {
        s: run(
            tiny("trainer.max_epochs=5", f"logger.flush_every_s={s}", experiment_name=experiment),
            callbacks=[peeks[s]],
        )["run_id"]
        for s in peeks
    }
    every, held = (_history(runs[s]) for s in (0, 3600))
    assert {k: [(m.step, m.value) for m in v] for k, v in every.items()} == {
        k: [(m.step, m.value) for m in v] for k, v in held.items()
    }
    assert [m.step for m in held["val/acc"]] == [0, 1, 2, 3, 4]
    assert peeks[0].seen[-1] >= 4  # written as the epochs end
    assert max(peeks[3600].seen) <= 1  # the first epoch at once, the rest when fit ends
    # each epoch keeps the time it was logged, not the time it was written
    assert len({m.timestamp for m in held["val/acc"]}) >= 2

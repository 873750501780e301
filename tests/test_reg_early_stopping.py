"""Early stopping with best-weights restore (reg/early_stopping.py)."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from conftest import runs_of
from regbench.errors import ConfigError
from regbench.tracking import get_client
from regbench.train import run


class Snapshots(pl.Callback):
    """Weights after every validation, and the weights the test runs with."""

    def __init__(self) -> None:
        self.per_epoch: list[dict] = []
        self.tested: dict | None = None

    def _copy(self, pl_module) -> dict:
        return {k: v.detach().clone() for k, v in pl_module.state_dict().items()}

    def on_validation_end(self, trainer, pl_module) -> None:
        self.per_epoch.append(self._copy(pl_module))

    def on_test_start(self, trainer, pl_module) -> None:
        self.tested = self._copy(pl_module)


def test_early_stopping_stops_and_tests_the_best_epochs_weights(tiny, experiment):
    # A large Adam step on 540 samples overfits fast: val/loss bottoms out, then rises.
    snaps = Snapshots()
    cfg = tiny(
        "reg=[early_stopping]",
        "reg.early_stopping.patience=2",
        "model.width=64",
        "optim.lr=0.02",
        "trainer.max_epochs=40",
        "scheduler=constant",
        experiment_name=experiment,
    )
    out = run(cfg, callbacks=[snaps])
    [r] = runs_of(experiment)
    val = [m.value for m in get_client().get_metric_history(r.info.run_id, "val/loss")]
    best = min(range(len(val)), key=val.__getitem__)
    # stopped after `patience` epochs without improvement, long before max_epochs
    assert len(val) == best + 1 + 2 < 40
    assert out["diag/best_epoch"] == best and out["diag/stopped_epoch"] == len(val) - 1
    assert best > 0  # it learned before it overfitted
    # the test (and the diagnostics) ran with the best epoch's weights, not the last ones
    for k, v in snaps.per_epoch[best].items():
        assert torch.equal(snaps.tested[k], v), k
    last = snaps.per_epoch[-1]
    assert any(not torch.equal(last[k], v) for k, v in snaps.tested.items())


def test_early_stopping_on_a_max_metric_and_bad_settings(tiny, experiment):
    out = run(
        tiny(
            "reg=[early_stopping]",
            "reg.early_stopping.monitor=val/acc",
            "reg.early_stopping.mode=max",
            "reg.early_stopping.patience=1",
            "trainer.max_epochs=6",
            experiment_name=experiment,
        )
    )
    [r] = runs_of(experiment)
    acc = [m.value for m in get_client().get_metric_history(r.info.run_id, "val/acc")]
    # mode=max: the best epoch is the first one with the highest val/acc, and training
    # stopped one epoch (patience=1) after the last improvement, or at max_epochs
    best = max(range(len(acc)), key=lambda i: (acc[i], -i))
    assert out["diag/best_epoch"] == best
    assert out["diag/best_value"] == pytest.approx(acc[best])  # the monitored value there
    assert out["diag/stopped_epoch"] == len(acc) - 1 == min(best + 1, 5)
    for overrides, message in [
        (["reg.early_stopping.patience=0"], "reg.early_stopping.patience=0 is not valid"),
        (["reg.early_stopping.mode=lowest"], "reg.early_stopping.mode='lowest' is not valid"),
        (["reg.early_stopping.min_delta=-1"], "reg.early_stopping.min_delta=-1 is out of range"),
        (["data.val_fraction=0"], "needs a validation split, but data.val_fraction=0"),
    ]:
        with pytest.raises(ConfigError) as e:
            run(tiny("reg=[early_stopping]", *overrides, experiment_name=experiment + "-bad"))
        assert message in str(e.value)
    assert runs_of(experiment + "-bad") == []

"""The epoch bars: a run's bar shows each epoch's own metrics (the values MLflow records
for it), and a batched group's bar is named and shows the models' means; both end their
line when training stops."""

from __future__ import annotations

import re

from regbench.progress import GroupEpochBar
from regbench.tracking import get_client


def _frames(text: str) -> list[str]:
    """The successive renderings of tqdm bars (each starts with a carriage return)."""
    return [f for f in re.split(r"[\r\n]", text) if "ep/s" in f or "ep]" in f]


def _shown(frame: str, key: str) -> str | None:
    m = re.search(rf"{key}=([-0-9.]+)", frame)
    return m.group(1) if m else None


def test_the_bar_shows_each_epochs_own_train_and_val_metrics(tiny, experiment, capfd):
    from regbench.train import run

    out = run(tiny("trainer.max_epochs=3", "trainer.progress_bar=true", experiment_name=experiment))
    frames = _frames(capfd.readouterr().err)
    client = get_client()
    logged = {
        key: [f"{m.value:.3f}" for m in sorted(client.get_metric_history(out["run_id"], key),
                                               key=lambda m: m.step)]
        for key in ("train/loss", "val/acc")
    }  # fmt: skip
    assert len(logged["train/loss"]) == 3
    for done in (1, 2, 3):  # the frame drawn when `done` epochs have finished
        frame = next(f for f in frames if f" {done}/3 " in f)
        assert _shown(frame, "tr_loss") == logged["train/loss"][done - 1], frame
        assert _shown(frame, "va_acc") == logged["val/acc"][done - 1], frame
    assert _shown(frames[-1], "tr_loss") == logged["train/loss"][-1]


def test_group_bar_names_the_group_and_shows_the_models_means(capfd):
    bar = GroupEpochBar("mlp-l1-s0,1", 2, total=2)
    bar.seen({"val/acc": 0.5, "train/loss": 1.0})
    bar.seen({"val/acc": 0.7, "train/loss": 2.0})
    bar.epoch_done(1)
    bar.seen({"val/acc": 0.6, "train/loss": 0.5})
    bar.seen({"val/acc": 0.8, "train/loss": 0.7})
    bar.epoch_done(2)
    bar.close()
    frames = _frames(capfd.readouterr().err)
    first = next(f for f in frames if " 1/2 " in f)
    assert first.startswith("mlp-l1-s0,1 (2 models, batched, means):")
    assert _shown(first, "tr_loss") == "1.500" and _shown(first, "va_acc") == "0.600"
    assert _shown(frames[-1], "tr_loss") == "0.600" and _shown(frames[-1], "va_acc") == "0.700"
    one = GroupEpochBar("mlp-s0", 1, total=1)
    assert one.bar.desc == "mlp-s0 (1 model, batched)"  # no "1 models", no "means" of one
    one.close()

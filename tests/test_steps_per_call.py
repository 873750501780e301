"""Several optimizer steps per Lightning call (``trainer.steps_per_call``) against
Lightning's automatic optimization: the same steps in the same order, so every logged
value must be bit-identical; chunking and batch limits keep Lightning's meaning."""

from __future__ import annotations

import pytest
import torch

from conftest import runs_of
from regbench.data.batches import BatchGroups, TensorBatches, limit_batches
from regbench.errors import ConfigError
from regbench.tracking import get_client
from regbench.train import build, make_trainer, run

# Everything that touches a step: dropout masks (RNG order), a penalty in the loss, a
# constraint after each step, mixup on the batch, gradient clipping, an epoch scheduler.
FULL = [
    "model.dropout=0.2",
    "reg=[l2,max_norm,mixup]",
    "scheduler=cosine",
    "trainer.gradient_clip_val=0.5",
    "trainer.max_epochs=3",
    "seed=5",
]


def _history(run_id: str) -> dict[str, list[tuple[int, float]]]:
    client = get_client()
    # time/ metrics are wall times (cost), the only values two identical runs may not share
    keys = [k for k in get_client().get_run(run_id).data.metrics if not k.startswith("time/")]
    return {k: [(m.step, m.value) for m in client.get_metric_history(run_id, k)] for k in keys}


@pytest.mark.parametrize("steps", [5, 64])
def test_steps_per_call_is_bit_identical_to_automatic_optimization(tiny, experiment, steps):
    auto = run(tiny(*FULL, "trainer.steps_per_call=1", experiment_name=experiment))
    fused = run(tiny(*FULL, f"trainer.steps_per_call={steps}", experiment_name=experiment))
    a, f = _history(auto["run_id"]), _history(fused["run_id"])
    assert set(a) == set(f) and "train/reg/l2" in a and "val/acc" in a
    assert a == f  # every value of every metric at every epoch, exactly
    assert len(a["train/loss"]) == 3


def test_limit_train_batches_counts_minibatches_in_both_modes(tiny):
    for steps in (1, 4):
        cfg = tiny(f"trainer.steps_per_call={steps}", "trainer.limit_train_batches=6")
        _, data, module = build(cfg)
        trainer = make_trainer(cfg, logger=False)
        trainer.fit(module, datamodule=data)
        assert trainer.global_step == 2 * 6, steps  # 2 epochs x 6 optimizer steps


def test_chunks_regroup_the_same_batches_in_order():
    x, y = torch.arange(23.0).view(23, 1), torch.arange(23)
    plain = TensorBatches(x, y, 4, shuffle=True, seed=3)
    grouped = BatchGroups(TensorBatches(x, y, 4, shuffle=True, seed=3), 2)
    for _ in range(2):  # two epochs: the shuffle advances identically
        flat = [pair for chunk in grouped for pair in chunk]
        ref = list(plain)
        assert len(flat) == len(ref) == 6 and len(grouped) == 3
        for (xa, ya), (xb, yb) in zip(flat, ref, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_limit_batches_follows_lightning():
    assert limit_batches(10, 3) == 3 and limit_batches(10, 30) == 10
    assert limit_batches(10, 0.25) == 2 and limit_batches(10, 1.0) == 10
    with pytest.raises(ValueError, match="fraction"):
        limit_batches(10, 1.5)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.steps_per_call=0", "trainer.steps_per_call=0 is not valid"),
        ("trainer.limit_train_batches=2.5", "trainer.limit_train_batches: a fractional limit"),
    ],
)
def test_bad_trainer_settings_fail_before_any_run(tiny, experiment, override, message):
    with pytest.raises(ConfigError) as e:
        run(tiny(override, experiment_name=experiment))
    assert message in str(e.value)
    assert runs_of(experiment) == []

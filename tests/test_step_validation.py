"""trainer.val_every_n_steps: validation every n optimizer steps, logged against the step,
without changing the run; bad values fail before training; batched grids run it alone."""

from __future__ import annotations

import pytest

from regbench.errors import ConfigError
from regbench.report import history
from regbench.train import build, run

KEYS = ["train/loss", "train/acc", "val/loss", "val/acc", "test/loss", "test/acc"]
# 600 train samples, 10% held out: 540 / 50 = 11 optimizer steps an epoch
EPOCH = 11


def test_step_validation_leaves_the_run_bit_identical_and_matches_epoch_validation(
    tiny, experiment
):
    plain = run(tiny("trainer.max_epochs=3", experiment_name=experiment))
    stepped = run(
        tiny(
            "trainer.max_epochs=3", f"trainer.val_every_n_steps={EPOCH}", experiment_name=experiment
        )
    )
    assert [plain[k] for k in KEYS] == [stepped[k] for k in KEYS]
    acc = history(stepped["run_id"], "val_step/acc")
    loss = history(stepped["run_id"], "val_step/loss")
    assert [s for s, _ in acc] == [s for s, _ in loss] == [0, 11, 22, 33]  # before step 1 too
    # every 11 steps is every epoch end: the same model on the same (whole) split as val/*
    epoch_acc = history(stepped["run_id"], "val/acc")
    assert [v for _, v in acc[1:]] == pytest.approx([v for _, v in epoch_acc], abs=1e-6)
    epoch_loss = history(stepped["run_id"], "val/loss")
    assert [v for _, v in loss[1:]] == pytest.approx([v for _, v in epoch_loss], rel=1e-5)
    assert 0.0 <= acc[0][1] <= 0.3  # an untrained 10-class net: about chance


def test_step_validation_cadence_and_subset_and_both_optimization_modes(tiny, experiment):
    def points(*extra):
        cfg = tiny("trainer.val_every_n_steps=4", "trainer.val_step_samples=25", *extra)
        _, data, module = build(cfg)
        from regbench.train import make_trainer

        cb = module.reg.callbacks[0]
        assert len(cb.y) == 25  # the first 25 validation samples
        make_trainer(cfg, logger=False, callbacks=module.reg.callbacks).fit(module, datamodule=data)
        return cb.points

    fused, auto = points(), points("trainer.steps_per_call=1")
    # 2 epochs of 11 steps: before steps 1, 5, 9, 13, 17, 21 (steps 0..20 taken)
    assert [s for s, *_ in fused] == [0, 4, 8, 12, 16, 20]
    assert fused == auto  # the same models at the same steps in both modes
    assert all(acc * 25 == round(acc * 25) for _, acc, _ in fused)  # a count out of 25


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["trainer.val_every_n_steps=-1"],
            "trainer.val_every_n_steps=-1 is not valid; it must be an integer >= 0",
        ),
        (
            ["trainer.val_every_n_steps=10", "data.val_fraction=0"],
            "trainer.val_every_n_steps=10 needs a validation split, but it is empty; "
            "set data.val_fraction > 0 or trainer.val_every_n_steps=0",
        ),
        (
            ["trainer.val_step_samples=-5"],
            "trainer.val_step_samples=-5 is not valid; it must be an integer >= 0",
        ),
    ],
)
def test_bad_step_validation_values_fail_before_training(tiny, overrides, message):
    with pytest.raises(ConfigError) as err:
        build(tiny(*overrides))
    assert str(err.value) == message


def test_a_batched_grid_runs_step_validation_one_by_one(tiny):
    from regbench.batched.plan import unbatchable
    from regbench.batched.runs import build_member

    with_it = build_member(tiny("trainer.val_every_n_steps=10"), ["x"], {})
    assert "StepValidation" in unbatchable(with_it)
    assert unbatchable(build_member(tiny(), ["x"], {})) is None

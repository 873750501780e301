"""he_init: the mean-field recursion, the config, and the tiny scale end to end."""

from __future__ import annotations

import math

import pytest

from conftest import runs_of


def test_recursion_gives_the_papers_factors():
    from regbench.reproductions.he_init import predicted

    assert predicted("kaiming", 1.0, 256, 30) == pytest.approx(0.0, abs=1e-12)
    assert predicted("xavier", 1.0, 256, 30) == pytest.approx(-29.0, abs=1e-12)
    # default without its bias would lose log2(6) bits a layer; the bias floor stops that
    assert predicted("default", 1.0, 256, 30) > 29 * math.log2(1 / 6)
    q_floor = (1 / (3 * 256)) / (1 - 1 / 6)  # fixed point of q = q/6 + 1/(3w)
    assert predicted("default", 1.0, 256, 60) == pytest.approx(math.log2(q_floor), abs=1e-9)


def test_he_init_config_is_the_declared_setup():
    from regbench.config import compose

    cfg = compose(["experiment=he_init"])
    assert (cfg.model.depth, cfg.model.width, list(cfg.model.block)) == (30, 256, ["linear", "act"])
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.momentum) == ("sgd", 0.01, 0.9)
    assert cfg.trainer.max_epochs == 5 and cfg.model.norm == "none"


def test_he_init_tiny_verdicts(experiment):
    from regbench.reproductions.base import build_report
    from regbench.reproductions.he_init import HeInit

    repro = HeInit()
    repro.experiment_name = lambda scale: experiment
    repro.train("tiny", [0, 1, 2], 1)
    out = build_report(repro, "tiny").parent
    rep = repro.analyse(experiment, "tiny", out)
    # tiny trains 3 epochs on 600 samples: too short for He's loss to halve or not
    assert {v.claim.key: v.status for v in rep.claims} == {
        "fwd_kaiming": "SUPPORTED",
        "fwd_xavier": "SUPPORTED",
        "fwd_default": "SUPPORTED",
        "train_he": "INCONCLUSIVE",
        "train_xavier": "SUPPORTED",
    }
    assert len(runs_of(experiment)) >= 9 + 9  # forward and training child runs
    assert (out / "he_init.png").exists()

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
    from regbench.report.family import holm
    from regbench.reproductions.base import build_report
    from regbench.reproductions.he_init import HeInit

    repro = HeInit()
    repro.experiment_name = lambda scale: experiment
    repro.train("tiny", [0, 1, 2], 1)
    out = build_report(repro, "tiny").parent
    rep = repro.analyse(experiment, "tiny", out)
    fam = {v.claim.key: v for v in holm(rep.claims)}
    # strong effects only: PyTorch's default follows its recursion to a few hundredths of a
    # bit (p ~ 1e-4), and 3 epochs leave Xavier's loss at 0.9997 of its start (p ~ 1e-8);
    # He's band and He's loss ratio at tiny scale could go either way: not pinned
    for key in ("fwd_default", "train_xavier"):
        v = fam[key]
        assert (v.status, v.family_status) == ("SUPPORTED", "SUPPORTED"), key
        assert v.p_value < v.holm_level / 10
    assert {v.family_size for v in fam.values()} == {5}
    assert len(runs_of(experiment)) >= 9 + 9  # forward and training child runs
    assert (out / "he_init.png").exists()

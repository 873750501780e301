"""reg=[l1_prox]: soft-thresholding after every optimizer step makes exact zeros, where the
subgradient of reg=[l1] does not; bad settings fail before training."""

from __future__ import annotations

import pytest
import torch

from regbench.errors import ConfigError
from regbench.reg.proximal import soft_threshold_
from regbench.train import build, make_trainer


def test_soft_threshold_shrinks_by_the_threshold_and_zeroes_what_is_below_it():
    w = torch.nn.Parameter(torch.tensor([0.5, -0.05, 0.02, -1.0, 0.1]))
    soft_threshold_([w], 0.1)
    assert w.tolist() == pytest.approx([0.4, 0.0, 0.0, -0.9, 0.0], abs=1e-7)
    assert int((w == 0).sum()) == 3  # exact zeros, including |w| equal to the threshold


def _first_layer(tiny, reg: str):
    cfg = tiny(
        f"reg=[{reg}]", f"reg.{reg}.strength=0.05", "optim=sgd", "optim.lr=0.1",
        "optim.momentum=0.0", "scheduler=constant", "trainer.max_epochs=3",
    )  # fmt: skip
    _, data, module = build(cfg)
    make_trainer(cfg, logger=False, callbacks=module.reg.callbacks).fit(module, datamodule=data)
    weights = [p for p in module.model.parameters() if p.ndim > 1]
    biases = [p for p in module.model.parameters() if p.ndim == 1]
    return weights[0].detach(), biases


def test_proximal_l1_makes_exact_zeros_and_the_subgradient_does_not(tiny):
    prox, prox_biases = _first_layer(tiny, "l1_prox")
    sub, _ = _first_layer(tiny, "l1")
    # threshold 0.05 * 0.1 = 0.005 a step, 33 steps: more than the init scale of the
    # 40-input layer's small weights (uniform in +-1/sqrt(40) = 0.158)
    assert float((prox == 0).float().mean()) > 0.3
    assert int((sub == 0).sum()) == 0  # fixed-size steps jump over zero
    assert all(bool((b != 0).all()) for b in prox_biases)  # params: weights leaves biases


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["reg=[l1_prox]", "scheduler=cosine"],
            "reg.l1_prox needs scheduler=constant (its threshold strength * lr assumes one "
            "step size); got scheduler=cosine",
        ),
        (
            ["reg=[l1_prox]", "scheduler=constant", "reg.l1_prox.strength=-1"],
            "reg.l1_prox.strength=-1 is out of range; allowed: [0, inf)",
        ),
        (
            ["reg=[l1_prox]", "scheduler=constant", "reg.l1_prox.params=banana"],
            "reg.l1_prox.params='banana' is not valid; choose one of: all, weights",
        ),
    ],
)
def test_bad_proximal_l1_settings_fail_before_training(tiny, overrides, message):
    with pytest.raises(ConfigError) as err:
        build(tiny(*overrides))
    assert str(err.value) == message

"""Confidence penalty (Pereyra et al. 2017, arXiv 1701.06548): loss - beta * H(p).

Added as one file (src/regbench/reg/confidence.py) and one config
(conf/reg/confidence_penalty.yaml), through the penalty hook: nothing else was edited."""

from __future__ import annotations

import math

import pytest
import torch

from regbench.config import compose
from regbench.errors import ConfigError
from regbench.reg import build_regularizers
from regbench.train import run


def _hook(*overrides: str):
    cfg = compose(["reg=[confidence_penalty]", *overrides])
    return build_regularizers(cfg).penalties["confidence_penalty"]


def test_term_is_minus_beta_times_the_entropy_and_pushes_towards_uniform():
    hook = _hook("reg.confidence_penalty.beta=0.5")
    torch.manual_seed(0)
    logits = torch.randn(6, 5) * 3
    p = logits.softmax(1)
    want = -0.5 * (-(p * p.log()).sum(1)).mean()
    assert hook(None, logits, torch.zeros(6), 0).item() == pytest.approx(want.item(), rel=1e-6)
    # bounds: 0 at one-hot predictions, -beta * log K at uniform ones
    assert hook(None, torch.zeros(3, 5), None, 0).item() == pytest.approx(-0.5 * math.log(5))
    assert hook(None, torch.eye(5) * 1e4, None, 0).item() == pytest.approx(0.0, abs=1e-6)
    # gradient descent on the term alone raises the entropy of every row
    x = logits.clone().requires_grad_(True)
    hook(None, x, None, 0).backward()
    with torch.no_grad():
        after = x - 0.1 * x.grad
    h0 = -(p * p.log()).sum(1)
    q = after.softmax(1)
    assert bool(((-(q * q.log()).sum(1)) > h0).all())


def test_training_with_it_logs_the_term_and_softens_predictions(tiny, experiment):
    common = ("trainer.max_epochs=3", "diag.enabled=false", "data.val_fraction=0")
    base = run(tiny(*common, experiment_name=experiment))
    beta = 2.0
    out = run(
        tiny(
            *common,
            "reg=[confidence_penalty]",
            f"reg.confidence_penalty.beta={beta}",
            experiment_name=experiment,
        )
    )
    term = out["train/reg/confidence_penalty"]
    assert -beta * math.log(10) <= term < 0
    # the total loss is data loss + term (logged epoch means of the same steps)
    assert out["train/loss"] == pytest.approx(out["train/loss_data"] + term, rel=1e-5)
    # same seed, data and init: softer predictions fit the training labels less tightly
    assert out["train/loss_data"] > base["train/loss_data"]


def test_negative_beta_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"reg.confidence_penalty.beta=-1 is out of range"):
        _hook("reg.confidence_penalty.beta=-1")

"""Diagnostics: variance shift (Li et al. 2019, arXiv 1801.05134), BN re-estimation,
train/eval-mode accuracy, weight statistics, and their logging under diag/."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import runs_of
from regbench.diagnostics import (
    EvalData,
    accuracy,
    batch_norms,
    input_q,
    reestimate_bn,
    variance_shift,
    weight_stats,
)
from regbench.reg.dropout import BernoulliDropout, Uout
from regbench.tracking import get_client
from regbench.train import run


def trained_bn(noise: nn.Module, x: torch.Tensor) -> nn.Sequential:
    """noise -> BN, BN's running statistics accumulated over ``x`` in training mode
    (cumulative average), as training would leave them."""
    m = nn.Sequential(noise, nn.BatchNorm1d(x.shape[1], momentum=None, affine=False))
    m.train()
    with torch.no_grad():
        for xb in x.split(500):
            m(xb)
    return m.eval()


def data(x: torch.Tensor) -> EvalData:
    return EvalData(x, torch.zeros(len(x), dtype=torch.long), 1000, "cpu")


@pytest.mark.parametrize(
    ("mean", "p"),
    [(0.0, 0.5), (1.0, 0.5), (0.0, 0.8)],
)
def test_shift_of_dropout_before_bn_matches_theory(mean, p):
    # Li et al.: moving var (c^2 + v) / p - c^2 vs real var v; p = retain probability.
    torch.manual_seed(0)
    x = torch.randn(50_000, 8) + mean
    m = trained_bn(BernoulliDropout(1 - p), x)  # our rate is the DROP probability 1 - p
    v, c2 = 1.0, mean**2
    want = ((c2 + v) / p - c2) / v
    assert variance_shift(m, data(x))["bn1"] == pytest.approx(want, rel=0.03)


def test_bn_input_q_predicts_the_shift_through_li_et_als_formula():
    # channel means 0, 1, 2, 3 at unit variance: q = c^2 / v per channel, mean 3.5
    torch.manual_seed(2)
    x = torch.randn(50_000, 4) + torch.arange(4.0)
    p = 0.5
    m = trained_bn(BernoulliDropout(1 - p), x)
    q = input_q(m, data(x))["bn1"]
    assert q == pytest.approx(3.5, rel=0.02)
    # the channel mean of the ratio is linear in q: 1 + (1 + q)(1/p - 1)
    assert variance_shift(m, data(x))["bn1"] == pytest.approx(1 + (1 + q) * (1 / p - 1), rel=0.03)


def test_shift_of_uout_before_bn_is_1_over_3_over_3_plus_b2():
    torch.manual_seed(1)
    x = torch.randn(50_000, 8)
    b = 0.5
    m = trained_bn(Uout(b), x)
    assert variance_shift(m, data(x))["bn1"] == pytest.approx((3 + b * b) / 3, rel=0.01)


def test_reestimation_removes_the_shift_on_a_copy():
    torch.manual_seed(2)
    x = torch.randn(20_000, 8)
    m = trained_bn(BernoulliDropout(0.5), x)
    before = m[1].running_var.clone()
    fixed = reestimate_bn(m, data(x).with_batch_size(64))
    assert variance_shift(fixed, data(x))["bn1"] == pytest.approx(1.0, abs=0.02)
    assert torch.equal(m[1].running_var, before)  # the original is untouched
    assert fixed is not m and not fixed.training


def test_train_mode_accuracy_does_not_touch_the_model():
    torch.manual_seed(3)
    m = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)).eval()
    x, y = torch.randn(300, 4), torch.randint(0, 3, (300,))
    state = {k: v.clone() for k, v in m.state_dict().items()}
    d = EvalData(x, y, 64, "cpu")
    acc_train, acc_eval = accuracy(m, d, train_mode=True), accuracy(m, d)
    assert 0.0 <= acc_train <= 1.0
    assert acc_eval == pytest.approx(float((m(x).argmax(1) == y).float().mean()))
    assert not m.training
    assert all(torch.equal(v, state[k]) for k, v in m.state_dict().items())
    assert list(batch_norms(m)) == ["bn1"]


def test_weight_stats_norms_and_sparsity():
    m = nn.Sequential(nn.Linear(4, 2, bias=False), nn.Linear(2, 1))
    with torch.no_grad():
        m[0].weight.copy_(torch.tensor([[3.0, 4.0, 0.0, 0.0], [0.0, 1e-4, 0.0, 1.0]]))
        m[1].weight.copy_(torch.tensor([[1e-2, 2e-4]]))
    s = weight_stats(m, 1e-3)
    assert s["weight_norm/0"] == pytest.approx(26**0.5)
    assert s["sparsity"] == pytest.approx(6 / 10)  # 0, 0 / 0, 1e-4, 0 / 2e-4 of 10 weights
    # RMS of layer 0 is sqrt(26 / 8): 0, 0, 0, 1e-4, 0 lie below 0.01 RMS = 0.018
    assert s["small_frac/0"] == pytest.approx(5 / 8)
    assert s["small_frac/1"] == 0.0  # 2e-4 is above 0.01 RMS(1e-2, 2e-4) = 7.1e-5


def history(run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in get_client().get_metric_history(run_id, key)]


def test_diagnostics_are_logged_and_do_not_change_the_run(tiny, experiment):
    common = ("model.norm=batch", "model.dropout=0.3", "trainer.max_epochs=3")
    out = run(tiny(*common, "diag.every_n_epochs=2", experiment_name=experiment))
    off = run(tiny(*common, "diag.enabled=false", experiment_name=experiment + "-off"))
    [r] = runs_of(experiment)
    m = r.data.metrics
    for key in (
        "diag/var_shift/bn1",
        "diag/var_shift/bn2",
        "diag/var_shift_reest/bn1",
        "diag/train_acc_trainmode",
        "diag/train_acc_evalmode",
        "diag/test_acc",
        "diag/test_acc_reest",
        "diag/sparsity",
        "diag/gen_gap",
        "diag/weight_norm/blocks.0.0",
        "diag/weight_norm/head",
    ):
        assert key in m, key
    # every 2 epochs (after epoch index 1) and at the end (epoch index 2)
    assert [s for s, _ in history(r.info.run_id, "diag/test_acc")] == [1, 2]
    # the diagnosed model is the tested one, and diagnostics draw from their own RNG
    assert m["diag/test_acc"] == pytest.approx(out["test/acc"])
    assert m["diag/gen_gap"] == pytest.approx(m["diag/train_acc_evalmode"] - m["diag/test_acc"])
    assert off["test/acc"] == out["test/acc"] and off["train/loss"] == out["train/loss"]
    assert not any(k.startswith("diag/") for k in off)


# docs/REPRODUCTIONS.md section 1, CPU scale: MNIST-1D, MLP 3 x [Linear-BN-ReLU] width 128, SGD
# lr 0.1 momentum 0.9, weight decay 5e-4, cosine, batch 64.
DISHARMONY = [
    "model.depth=3",
    "model.width=128",
    "model.norm=batch",
    "optim=sgd",
    "optim.lr=0.1",
    "optim.momentum=0.9",
    "optim.weight_decay=5e-4",
    "scheduler=cosine",
    "data.batch_size=64",
    "trainer.progress_bar=false",
]
BEFORE_BN = ["model.block=[linear,dropout,norm,act]", "model.dropout=0.5"]
BEFORE_HEAD = ["model.block=[linear,norm,act]", "model.head_dropout=0.5"]


def disharmony(epochs: int, experiment: str) -> tuple[dict, dict]:
    from regbench.config import compose

    def one(placement: list[str], name: str) -> dict:
        cfg = compose(
            [*DISHARMONY, *placement, f"trainer.max_epochs={epochs}", f"experiment_name={name}"]
        )
        run(cfg)
        [r] = runs_of(name)
        return r.data.metrics  # as logged to MLflow

    return one(BEFORE_BN, f"{experiment}-bn"), one(BEFORE_HEAD, f"{experiment}-head")


def check_disharmony(before: dict, head: dict) -> None:
    # dropout 0.5 directly before BN: logged shift >= 2 (theory: 1/p = 2 on the first
    # layer, compounding deeper); dropout only before the classifier: <= 1.1
    assert before["diag/var_shift_max"] >= 2.0
    assert before["diag/var_shift/bn1"] >= 1.8
    assert max(head[f"diag/var_shift/bn{i}"] for i in (1, 2, 3)) <= 1.1
    # re-estimating BN removes the shift and raises test accuracy by several points
    assert max(before[f"diag/var_shift_reest/bn{i}"] for i in (1, 2, 3)) <= 1.05
    assert before["diag/test_acc_reest"] >= before["diag/test_acc"] + 0.05
    assert before["diag/test_acc"] == pytest.approx(before["test/acc"])
    # train-set accuracy in eval mode falls below train mode only in the shifted case
    assert before["diag/train_acc_evalmode"] < before["diag/train_acc_trainmode"]
    assert head["diag/train_acc_evalmode"] > head["diag/train_acc_trainmode"]


def test_variance_shift_of_dropout_before_bn_short(experiment):
    """The fast form of the reproduction: 5 epochs (the slow test runs all 30)."""
    check_disharmony(*disharmony(5, experiment))


@pytest.mark.slow
def test_variance_shift_of_dropout_before_bn_reproduction(experiment):
    before, head = disharmony(30, experiment)
    check_disharmony(before, head)
    assert before["diag/var_shift_max"] >= 3.0
    assert head["test/acc"] > before["diag/test_acc_reest"] > before["test/acc"]

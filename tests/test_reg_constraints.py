"""Constraints projected after every optimizer step: max-norm per unit, Frobenius bound."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from regbench.config import compose
from regbench.errors import ConfigError
from regbench.reg import build_regularizers
from regbench.reg.constraints import frobenius_bound_, max_norm_, unit_norms
from regbench.reg.penalties import selected_params


def test_max_norm_rescales_only_rows_above_c_and_whole_conv_filters():
    torch.manual_seed(0)
    lin, conv = nn.Linear(10, 6), nn.Conv2d(3, 4, 3)
    with torch.no_grad():
        lin.weight.mul_(torch.tensor([0.1, 10, 0.1, 10, 0.1, 10]).view(6, 1))
        conv.weight.mul_(10)
    m = nn.Sequential(lin, conv)
    before_lin, bias = lin.weight.detach().clone(), lin.bias.detach().clone()
    max_norm_(selected_params(m, "weights"), 1.0)
    n = unit_norms(lin.weight)
    big = unit_norms(before_lin) > 1.0
    assert torch.allclose(n[big], torch.ones(int(big.sum())), atol=1e-6)
    assert torch.equal(lin.weight[~big], before_lin[~big])  # untouched below the bound
    # direction kept: rows are positive multiples of the old rows
    cos = nn.functional.cosine_similarity(lin.weight, before_lin, dim=1)
    assert torch.allclose(cos, torch.ones(6), atol=1e-6)
    # conv: a unit is the whole (in, kh, kw) filter
    assert torch.allclose(conv.weight.flatten(1).norm(dim=1), torch.ones(4), atol=1e-6)
    assert torch.equal(lin.bias, bias)


def test_frobenius_bound_scales_each_weight_as_a_whole():
    torch.manual_seed(1)
    m = nn.Sequential(nn.Linear(20, 20), nn.Linear(20, 2))
    with torch.no_grad():
        m[0].weight.mul_(100)
    small = m[1].weight.detach().clone()
    frobenius_bound_(selected_params(m, "weights"), 2.0)
    assert m[0].weight.norm().item() == pytest.approx(2.0, rel=1e-6)
    assert torch.equal(m[1].weight, small)  # its norm was below 2


class CheckAfterEveryStep(pl.Callback):
    """Records the largest unit norm of every weight after every optimizer step: at each
    backward after the first (the weights the previous step left) and at the end.
    ``on_after_backward`` runs once per optimizer step whatever ``trainer.steps_per_call``
    is (batch-level hooks run once per group of steps)."""

    def __init__(self) -> None:
        self.max_unit_norms: list[float] = []
        self.max_fro: list[float] = []
        self.backwards = 0

    def _record(self, pl_module) -> None:
        ws = [p for p in pl_module.model.parameters() if p.ndim > 1]
        self.max_unit_norms.append(max(unit_norms(w).max().item() for w in ws))
        self.max_fro.append(max(w.norm().item() for w in ws))

    def on_after_backward(self, trainer, pl_module) -> None:
        if self.backwards:  # the first backward still sees the initial weights
            self._record(pl_module)
        self.backwards += 1

    def on_train_end(self, trainer, pl_module) -> None:
        self._record(pl_module)


@pytest.mark.parametrize("steps_per_call", [1, 64])
def test_max_norm_and_frobenius_bound_hold_after_every_step_of_training(
    tiny, experiment, steps_per_call
):
    from regbench.train import run

    check = CheckAfterEveryStep()
    cfg = tiny(
        "reg=[max_norm,frobenius_bound]",
        "reg.max_norm.c=0.5",
        "reg.frobenius_bound.c=2.0",
        "optim.lr=0.01",
        f"trainer.steps_per_call={steps_per_call}",
        experiment_name=experiment,
    )
    run(cfg, callbacks=[check])
    assert len(check.max_unit_norms) == 2 * 11  # 2 epochs x 11 batches (540 train, 50 each)
    assert max(check.max_unit_norms) <= 0.5 + 1e-5
    assert max(check.max_fro) <= 2.0 + 1e-5
    # the bounds were active (kaiming init rows have norm about sqrt(2) > 0.5)
    assert max(check.max_unit_norms) > 0.5 - 1e-3


@pytest.mark.parametrize("name", ["max_norm", "frobenius_bound"])
@pytest.mark.parametrize("value", ["0", "-1"])
def test_bound_must_be_positive(name, value):
    with pytest.raises(ConfigError, match=rf"reg\.{name}\.c={value} is out of range"):
        build_regularizers(compose([f"reg=[{name}]", f"reg.{name}.c={value}"]))

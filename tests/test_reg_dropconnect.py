"""DropConnect (Wan et al. 2013): masks weights, not activations; inverted scaling."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from regbench.config import compose
from regbench.nn import build_model
from regbench.reg.dropconnect import DropConnectLinear, dropconnect_weight


def test_dropconnect_masks_individual_weights_not_whole_units():
    torch.manual_seed(0)
    layer = DropConnectLinear(50, 40, rate=0.5)
    eye = torch.eye(50)  # input i picks weight column i: out[i, j] = W'[j, i] + b[j]
    out = (layer(eye) - layer.bias).detach().T  # (40, 50) = the masked, rescaled weight
    w = layer.weight.detach()
    dropped = out == 0
    # every entry is either dropped or the weight scaled by 1 / (1 - rate)
    assert torch.allclose(out[~dropped], 2 * w[~dropped])
    assert dropped.float().mean().item() == pytest.approx(0.5, abs=0.05)
    # units keep some inputs and lose others in the same pass
    per_unit = dropped.float().mean(1)
    assert bool(((per_unit > 0) & (per_unit < 1)).all())
    # Activations are never zeroed: with dense inputs no pre-activation equals its bias
    # (dropout on the outputs would zero half of them exactly).
    dense = layer(torch.randn(64, 50)) - layer.bias
    assert bool((dense != 0).all())
    x = torch.randn(8, 50)
    torch.manual_seed(2)
    y = layer(x)
    torch.manual_seed(2)
    mask_w = dropconnect_weight(layer.weight, 0.5, True)
    assert torch.allclose(y, x @ mask_w.T + layer.bias, atol=1e-6)


def test_dropconnect_is_unbiased_in_training_and_deterministic_at_eval():
    torch.manual_seed(3)
    layer = DropConnectLinear(30, 5, rate=0.3)
    ref = nn.Linear(30, 5)
    ref.load_state_dict(layer.state_dict())
    x = torch.randn(16, 30)
    with torch.no_grad():
        mean = torch.stack([layer(x) for _ in range(20_000)]).mean(0)
        assert torch.allclose(mean, ref(x), atol=0.03)
        layer.eval()
        assert torch.equal(layer(x), ref(x)) and torch.equal(layer(x), layer(x))
    assert "rate=0.3" in repr(layer)


def test_model_dropconnect_puts_it_on_block_linears_only():
    cfg = compose(["model.depth=2", "model.width=16", "model.dropconnect=0.2"])
    m = build_model(cfg.model, (40,), 10)
    dc = [mod for mod in m.modules() if isinstance(mod, DropConnectLinear)]
    assert len(dc) == 2 and all(d.rate == 0.2 for d in dc)
    assert type(m.head) is nn.Linear
    # kaiming init reaches the DropConnect layers (they are nn.Linear subclasses)
    assert dc[0].weight.std().item() == pytest.approx((2 / 40) ** 0.5, rel=0.15)

"""Statistics of every activation layer's outputs on the test set: is the
representation sparse?

Srivastava et al. 2014 (JMLR 15(56), sec. 7.2, fig. 8) report that dropout, as a side
effect, makes hidden representations sparse: in an autoencoder with 256 ReLU units on
MNIST the mean activation is close to 2.0 without dropout and around 0.7 with it, and the
histogram of activations has a sharp peak at zero with dropout. Per activation layer l
(1-based, module order), over the test set in eval mode:

- ``diag/act_mean/<l>``: the mean output over samples and units;
- ``diag/act_rms/<l>``: its root mean square (the layer's scale);
- ``diag/act_near_zero/<l>``: the fraction of outputs with ``|a| <= eps * RMS`` (scale
  free: a net that multiplies a layer by c and the next layer's weights by 1/c computes
  the same function and gets the same fraction; for ReLU it counts the exact zeros and
  the nearly-off units);
- ``diag/act_dead/<l>``: the fraction of units that are near zero on every test input.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from regbench.diagnostics import eval_pass
from regbench.probes.evaluation import Batches, activation_layers


@torch.no_grad()
def layer_outputs(model: nn.Module, data: Batches) -> list[Tensor]:
    """Every activation layer's outputs over ``data``, eval mode: (N, C, *S) each."""
    layers = activation_layers(model)
    chunks: dict[int, list[Tensor]] = {i: [] for i in range(len(layers))}
    hooks = [
        m.register_forward_hook(lambda _m, _i, out, i=i: chunks[i].append(out.detach().cpu()))
        for i, m in enumerate(layers)
    ]
    eval_pass(model, data, hooks)
    return [torch.cat(chunks[i]) for i in range(len(layers))]


def activation_stats(a: Tensor, eps: float) -> dict[str, float]:
    """Mean, RMS, near-zero fraction and dead-unit fraction of outputs ``a`` (N, C, *S)."""
    a = a.double()
    rms = float(a.square().mean().sqrt())
    near = a.abs() <= eps * rms  # (N, C, *S)
    per_unit = near.transpose(0, 1).reshape(a.shape[1], -1)  # (C, N * S)
    return {
        "act_mean": float(a.mean()),
        "act_rms": rms,
        "act_near_zero": float(near.double().mean()),
        "act_dead": float(per_unit.all(dim=1).double().mean()),
    }


def activations_probe(model: nn.Module, data: Batches, eps: float) -> dict[str, float]:
    """``diag/<stat>/<l>`` for every activation layer l (see the module docstring)."""
    out = {}
    for layer, a in enumerate(layer_outputs(model, data), start=1):
        out.update({f"diag/{k}/{layer}": v for k, v in activation_stats(a, eps).items()})
    return out

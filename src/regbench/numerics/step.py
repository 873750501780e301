"""One training step's gradients in float32 against a float64 reference of the same step.

The step is the data loss of ``RegModule``'s training step: the batch goes through the
``reg`` batch transforms, then ``F.cross_entropy(model(x), target)`` and ``backward()``.
The transform runs once; its float32 output goes to the float32 model on the device
under test and its float64 copy to a float64 copy of the same weights on the CPU, so
both see the same draws. Stochastic layers are off (the cases set their rates to 0).
The float64 reference takes PyTorch's native CPU kernels (oneDNN has no float64
convolution), so it shares no kernel with the float32 path it checks.

Error of a parameter ``p``::

    err_p = ||g32_p - g64_p|| / max(||g64_p||, 1e-3 ||g64||)

with ``||g64||`` the norm of the whole gradient. A parameter whose gradient is under a
thousandth of the whole (a bias right before batch norm has gradient exactly 0 in exact
arithmetic) is measured against that thousandth: its float32 value is rounding noise of
the larger terms around it, not a result to compare relatively.

Tolerance, per case, from the model's shape (:func:`tolerance`): the sum of

- **rounding**: float32's unit roundoff ``u = 2**-24`` grows like ``sqrt(K) u`` over a
  reduction of K terms (the probabilistic bound of Higham & Mary 2019, SIAM J. Sci.
  Comput. 41(5), A2815), and the errors of the 2L reductions of a forward and backward
  pass through L weight layers add: ``2 L sqrt(K) u``, K the longest reduction (a fan-in,
  or batch x positions for a weight gradient), times ``KAPPA = 100`` for the
  cancellation in batch norm's centring and the softmax gradient (measured here: at most
  1.7e-5 for a 3-layer MLP with batch norm, 4x the bound without KAPPA, over 100 draws).
- **kinks**: a ReLU input within float32 rounding of 0 can take the other branch than in
  float64. That moves one of the N summands of the gradients at that layer (N = batch x
  positions), a relative change of about ``1 / sqrt(N)`` for summands of mixed sign; the
  bound takes the layer with the fewest (in a conv net a conv layer: the classifier sees
  globally pooled features, where one flipped output is diluted by the positions pooled).
  Measured here with batches of 8: up to 2.2e-2 where this bound is 0.11 (a 1-D
  ResNet-20's last stage, N = 80), in about one draw of ten; none above a quarter of
  its bound in 300 draws of five models.

For ResNet-20 on a (3, 32, 32) batch of 8 that is 0.066, for the MLP on a batch of 32
0.18. The kernel bug this check was written for (oneDNN's strided 1x1 backward-weights
kernel on AVX2 with channels-last input, issue 19) gave errors of 4 to 66 here and in
the issue: a kernel that is wrong is wrong by O(1), far above either term; a kernel a
few percent off may pass.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

U32 = 2.0**-24  # float32 unit roundoff
KAPPA = 100.0  # cancellation allowance of the rounding term (module docstring)
FLOOR = 1e-3  # parameters measured against at least this fraction of the whole gradient
KINKS = (nn.ReLU, nn.LeakyReLU, nn.ReLU6, nn.Hardtanh, nn.PReLU, nn.MaxPool1d, nn.MaxPool2d)


@dataclass(frozen=True)
class Shape:
    """What the tolerance needs from a model, read off one forward pass."""

    layers: int  # L: weight layers (Linear, Conv) on the way
    longest: int  # K: longest reduction (fan-in, or batch x positions of a layer)
    fewest: int  # N: fewest summands of a layer's gradient (batch x positions)
    kinks: bool  # ReLU-like layers present


@dataclass(frozen=True)
class StepError:
    """A case's outcome: the worst parameter's error and the tolerance it is held to."""

    error: float
    parameter: str
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.error <= self.tolerance  # NaN compares False: a NaN gradient fails


def tolerance(shape: Shape) -> float:
    """Rounding plus kink allowance of the module docstring."""
    rounding = KAPPA * 2 * shape.layers * math.sqrt(shape.longest) * U32
    kink = 1 / math.sqrt(shape.fewest) if shape.kinks else 0.0
    return rounding + kink


def _data_loss(model: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    """``RegModule``'s data loss (class indices or mixup's probabilities as target)."""
    return F.cross_entropy(model(x), target)


def _grads(model: nn.Module, x: Tensor, target: Tensor) -> dict[str, Tensor]:
    model.zero_grad(set_to_none=True)
    _data_loss(model, x, target).backward()
    return {  # a parameter the step does not reach has gradient 0
        n: (torch.zeros_like(p) if p.grad is None else p.grad).detach().to("cpu", torch.float64)
        for n, p in model.named_parameters()
    }


class _LayerSizes:
    """Forward hooks on the weight layers (Linear, Conv) record, during the step, each
    layer's fan-in and its batch x positions: what :class:`Shape` needs."""

    def __init__(self, model: nn.Module) -> None:
        self.seen: list[tuple[int, int, bool]] = []  # (fan-in, batch x positions, spatial)
        self.kinks = any(isinstance(m, KINKS) for m in model.modules())
        self.handles = [
            m.register_forward_hook(self._hook)
            for m in model.modules()
            if isinstance(getattr(m, "weight", None), Tensor) and m.weight.dim() >= 2
        ]

    def _hook(self, m: nn.Module, _inp, out: Tensor) -> None:
        # out (B, C, *S): batch x positions = out.numel() / C; (B, C) for a linear layer
        self.seen.append((m.weight[0].numel(), out.numel() // out.shape[1], out.dim() > 2))

    def shape(self) -> Shape:
        for h in self.handles:
            h.remove()
        # In a conv net the classifier sees globally pooled features, where one flipped
        # ReLU output is diluted by the positions pooled: the conv layers bound N.
        spatial = [n for _, n, s in self.seen if s] or [n for _, n, _ in self.seen]
        return Shape(
            layers=len(self.seen),
            longest=max(max(k, n) for k, n, _ in self.seen),
            fewest=min(spatial),
            kinks=self.kinks,
        )


def step_error(model: nn.Module, x: Tensor, target: Tensor, device: str = "cpu") -> StepError:
    """Gradients of one step of ``model`` (float32, moved to ``device``) on the batch
    ``(x, target)`` as the transforms left it, against the float64 copy on the CPU."""
    ref = copy.deepcopy(model).to(torch.float64)
    model = model.to(device)
    sizes = _LayerSizes(model)
    g32 = _grads(model, x.to(device), target.to(device))
    shape = sizes.shape()
    t64 = target.to(torch.float64) if target.is_floating_point() else target
    g64 = _grads(ref, x.to(torch.float64), t64)
    total = math.sqrt(sum(float((g * g).sum()) for g in g64.values()))
    errors = {}
    for n, g in g64.items():
        scale = max(float(g.norm()), FLOOR * total, torch.finfo(torch.float64).tiny)
        errors[n] = float((g32[n] - g).norm()) / scale
    # the worst parameter; a NaN (a kernel that wrote garbage) is the worst of all
    name = max(errors, key=lambda n: math.inf if math.isnan(errors[n]) else errors[n])
    return StepError(errors[name], name, tolerance(shape))

"""Stacked forms: S models' copies of a regularizer on a leading model axis.

A batched group (:mod:`regbench.batched`) runs a regularizer through what its own file
says (docs/ARCHITECTURE.md, "Batching"); this module is the contract and the one piece
the noise layers share. A regularizer object takes part through:

- ``stacked(members)``, a classmethod: the stacked form of ``members``, the S models'
  objects at one place (the same class, one per model; for layers, an empty slot
  ``nn.Identity`` stands for the layer at rate 0). Without it the regularizer runs one
  by one, and ``single_reason`` (or a default) says why in the run's ``regbench.exec``.
- ``per_model``: the fields of its ``reg`` entry that may differ inside a group (each
  model's value goes to the stacked form); every other field must be equal.

Stacked forms, by hook (S models, values per model as (S,) tensors):

- loss term: ``form(stacked, logits, targets, step) -> (S,)``; ``stacked.params`` are the
  parameters (S, *shape) (zero-padded), logits (S, B, K), targets (S, B) or (S, B, K);
- constraint: ``form(stacked)`` on the parameters, in place, under ``no_grad``;
- batch transform: ``form(x, targets) -> (x, targets)``, x (S, B, *input);
- stochastic layer: multiplicative noise, :class:`StackedNoise` below; a layer that skips
  a whole residual branch per mini-batch (token prefix :data:`SKIP`) says per model and
  step whether the branch runs (``keeps()``), so the program can leave a skipped model's
  parameters out of that step as the single form does (:mod:`regbench.reg.depth`).

Each model's draws come from that model's own streams (:mod:`regbench.streams`; the
group's loop sets every model's clock), with the same call and shape as its single form,
so the draws are bitwise those of the model trained alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from regbench.streams import Drawn

#: signature tokens of noise layers start with this: an empty slot (``nn.Identity``, the
#: layer at rate 0) merges with them, since the noise is then exactly 1
NOISE = "noise:"
#: tokens of layers that may skip a residual branch for a whole mini-batch (per-batch
#: stochastic depth); an empty slot merges with them too (it never skips)
SKIP = "skip:"
#: token prefixes an empty slot merges with
MERGES_WITH_EMPTY = (NOISE, SKIP)


def stackable(obj: object) -> str | None:
    """Why ``obj`` cannot run in a stacked form, or None if it can."""
    if getattr(type(obj), "stacked", None) is None:
        reason = getattr(obj, "single_reason", None) or "it defines no stacked form"
        return f"{type(obj).__name__}: {reason}"
    return None


def per_model_tensor(values: Sequence[float], like: Tensor | torch.device) -> Tensor:
    """(S,) tensor of per-model values on ``like``'s device, in its float dtype (float32
    for a device): the precision the single form's Python floats take in its ops."""
    if isinstance(like, Tensor):
        dtype = like.dtype if like.is_floating_point() else torch.float32
        return torch.tensor([float(v) for v in values], device=like.device, dtype=dtype)
    return torch.tensor([float(v) for v in values], device=like)


class PerModel:
    """Per-model values of a stacked form, as an (S,) tensor made once per device and dtype."""

    def __init__(self, values: Sequence[float]) -> None:
        self.values = [float(v) for v in values]
        self._on: dict[tuple, Tensor] = {}

    def on(self, like: Tensor) -> Tensor:
        key = (like.device, like.dtype)
        t = self._on.get(key)
        if t is None:
            t = self._on[key] = per_model_tensor(self.values, like)
        return t


def lead_view(v: Tensor, ndim: int) -> Tensor:
    """(S,) -> (S, 1, ..., 1) broadcast over an ``ndim``-dimensional stacked tensor."""
    return v.view(-1, *([1] * (ndim - 1)))


class Noise(Drawn):
    """A layer whose training output is ``x * noise``, the noise drawn from its stream:
    the dropout family, DropConnect (on the weight), DropPath per sample. A subclass
    defines the draw and how it becomes the noise, each written once for both forms:

    - ``param``: its one number (keep probability, sigma, ...); ``NEUTRAL`` the value at
      which the noise is exactly 1 (the layer at rate 0);
    - ``draw(out, generator)``: fill ``out`` with the raw random numbers (the only random
      call; the same on a model's slice of the stacked buffer as alone);
    - ``shape_noise(raw, param)``: raw -> noise in place, elementwise, ``param`` a float
      or per-model values broadcast over a stacked buffer;
    - ``noise_shape(shape)``: the noise's shape for an input of ``shape`` (default: the
      same); ``eval_scale``: the output factor at eval (``x * eval_scale``).
    """

    NEUTRAL = 1.0
    param: float
    eval_scale: float = 1.0

    def noise_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(shape)

    def draw(self, out: Tensor, generator: torch.Generator | None) -> Tensor:
        return out.uniform_(generator=generator)

    @staticmethod
    def shape_noise(raw: Tensor, param: float | Tensor) -> Tensor:
        raise NotImplementedError

    def noise_like(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """This layer's noise for ``x``, drawn from ``generator`` (default: its stream at
        the clock's counter; unbound, torch's global generator)."""
        g = generator if generator is not None else self.generator(x.device)
        raw = self.draw(x.new_empty(self.noise_shape(x.shape)), g)
        return self.shape_noise(raw, self.param)

    def noised(self, x: Tensor, training: bool, generator: torch.Generator | None = None) -> Tensor:
        """The single form: ``x * noise`` in training, ``x * eval_scale`` at eval."""
        if training:
            return x * self.noise_like(x, generator)
        return x if self.eval_scale == 1.0 else x * self.eval_scale

    @classmethod
    def stacked(cls, layers: Sequence[nn.Module]) -> StackedNoise:
        return StackedNoise(layers)


class StackedNoise:
    """The stacked form of S noise layers of one kind (``nn.Identity``: rate 0).

    ``form(x, training, shapes, view)``: ``x`` the stacked input in the program's layout,
    ``shapes[s]`` the shape model s's single form sees (e.g. (B, width_s)), ``view`` maps
    the noise stacked as (S, *noise shape) (zero-padded to the largest) onto x's layout
    (e.g. a transpose to feature-major). Each model's raw draw fills its slice with the
    single form's call; the elementwise shaping then runs once on the whole buffer."""

    def __init__(self, layers: Sequence[nn.Module]) -> None:
        self.layers: list[Noise | None] = [
            None if isinstance(m, nn.Identity) else m for m in layers
        ]
        first = next(m for m in self.layers if m is not None)
        self.kind: type[Noise] = type(first)
        self.first = first
        self.params = PerModel([self.kind.NEUTRAL if m is None else m.param for m in self.layers])
        scales = [1.0 if m is None else m.eval_scale for m in self.layers]
        self.scales = None if all(v == 1.0 for v in scales) else PerModel(scales)

    def __call__(
        self,
        x: Tensor,
        training: bool,
        shapes: Sequence[tuple[int, ...]],
        view: Callable[[Tensor], Tensor] = lambda t: t,
    ) -> Tensor:
        if not training:
            return x if self.scales is None else x * lead_view(self.scales.on(x), x.dim())
        noise_shapes = [self.first.noise_shape(s) for s in shapes]
        full = tuple(max(d) for d in zip(*noise_shapes, strict=True))
        buf = x.new_empty((len(self.layers), *full))  # (S, *noise shape)
        for s, (layer, shape) in enumerate(zip(self.layers, noise_shapes, strict=True)):
            if layer is None:  # rate 0: a zero raw draw shapes to a noise of exactly 1
                buf[s].zero_()
            elif shape == full:
                layer.draw(buf[s], layer.generator(x.device))
            else:  # a narrower model: drawn in its own shape, zero-padded
                part = layer.draw(x.new_empty(shape), layer.generator(x.device))
                buf[s].zero_()[tuple(slice(0, n) for n in shape)].copy_(part)
        noise = self.kind.shape_noise(buf, lead_view(self.params.on(x), buf.dim()))
        return x * view(noise)

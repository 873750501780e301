"""Which built models one stacked program can run: each model as a list of op tokens.

:func:`leaves` walks a model in execution order: :class:`~regbench.nn.mlp.MLP` (flatten,
input dropout, the blocks, head dropout, head) and :class:`~regbench.nn.mlp.ResMLP`
(input dropout, stem, residual blocks between ``res(`` and ``)res`` markers with their
DropPath, final layers, head dropout, head). Module order is execution order in both.

Torch's own layers (linear, norms, elementwise activations) get their tokens here: the
program runs them. A layer of ours says itself how it batches: ``stack_key()`` is its
token (None: it has no stacked form, and ``single_reason`` says why), and its class's
``stacked(layers)`` builds the stacked form (:mod:`regbench.reg.stacked`). An empty slot
(``nn.Identity``) merges with a noise layer (token prefix ``noise:``) at any rate, since
that layer at rate 0 is the identity: models that differ only in such rates share one
program.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from torch import nn

from regbench.nn.mlp import MLP, ResidualBlock, ResMLP
from regbench.reg.stacked import NOISE

OPEN, CLOSE = "res(", ")res"  # markers around a residual block (no module)

ELEMENTWISE = (nn.ReLU, nn.GELU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.ELU, nn.SiLU)


def own_token(m: nn.Module) -> str | None:
    """The token of a layer that defines its stacked form (``stack_key``), or None."""
    key = getattr(m, "stack_key", None)
    return None if key is None else key()


def leaf_token(m: nn.Module) -> str | None:
    """What a leaf module contributes to a group's signature; None: not batchable."""
    if type(m) is nn.Linear:
        return f"linear(bias={m.bias is not None})"
    if isinstance(m, nn.Linear):  # with weight noise (DropConnect), if it says how
        noise = own_token(m)
        return None if noise is None else f"linear(bias={m.bias is not None})+{noise}"
    if type(m) is nn.BatchNorm1d:
        return f"bn(eps={m.eps},mom={m.momentum},affine={m.affine},track={m.track_running_stats})"
    if type(m) is nn.LayerNorm:
        return f"ln({tuple(m.normalized_shape)},eps={m.eps},affine={m.elementwise_affine})"
    if type(m) is nn.GroupNorm:
        return f"gn({m.num_groups},{m.num_channels},eps={m.eps},affine={m.affine})"
    if isinstance(m, ELEMENTWISE) and type(m).__module__.startswith("torch"):
        return f"act:{m!r}"  # applied as is: elementwise, so any leading axes work
    if type(m) is nn.Identity:
        return "id"
    return own_token(m)


def _walk(m: nn.Module) -> Iterator[nn.Module | str]:
    if isinstance(m, ResidualBlock):
        yield OPEN
        yield from _walk(m.branch)
        yield m.drop_path
        yield CLOSE
    elif list(m.children()):
        for child in m.children():
            yield from _walk(child)
    elif type(m) is not nn.Flatten:
        yield m


def leaves(model: nn.Module) -> list[nn.Module | str]:
    """Leaf modules in execution order, with the residual markers."""
    return list(_walk(model))


def signature(model: nn.Module) -> tuple[str, ...] | str:
    """The model's op tokens, or a string saying why it cannot batch."""
    if type(model) not in (MLP, ResMLP):
        return f"model {type(model).__name__} is not batched (only mlp and resmlp are)"
    tokens = []
    for m in leaves(model):
        tok = m if isinstance(m, str) else leaf_token(m)
        if tok is None:
            why = getattr(m, "single_reason", None) or "it defines no stacked form"
            return f"layer {m!r} is not batched: {why}"
        tokens.append(tok)
    return tuple(tokens)


def merge_signatures(sigs: Sequence[tuple[str, ...]]) -> tuple[str, ...] | None:
    """One signature for all models (``id`` merged into a noise slot), or None."""
    if len({len(s) for s in sigs}) != 1:
        return None
    out = []
    for tokens in zip(*sigs, strict=True):
        kinds = set(tokens) - {"id"}
        if len(kinds) > 1:
            return None
        if kinds and "id" in tokens and not next(iter(kinds)).startswith(NOISE):
            return None  # only an empty noise slot merges (rate 0)
        out.append(kinds.pop() if kinds else "id")
    return tuple(out)

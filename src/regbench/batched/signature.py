"""Which built models one stacked program can run: each model as a list of op tokens.

:func:`leaves` walks a model in execution order, as its ``forward`` runs it:

- :class:`~regbench.nn.mlp.MLP`: flatten, input dropout, the blocks, head dropout, head;
- :class:`~regbench.nn.mlp.ResMLP`: flatten, input dropout, stem, residual blocks, final
  layers, head dropout, head;
- :class:`~regbench.nn.cnn.CNN1d`: the signal as one channel, the conv layers, flatten, head;
- :class:`~regbench.nn.resnet.ResNet`: the input's channels, input dropout, stem, the
  stages' residual blocks, final layers, global average pooling, head dropout, head.

A residual block is ``res(`` branch, its DropPath slot, ``|short`` shortcut, ``)res``,
then the layers after the sum (the residual MLP's blocks have no shortcut part: it is
the identity). Markers (strings) stand where the model does something that is no module:
:data:`INPUTS` (how a batch becomes the first activation), :data:`POOL`, the residual
markers.

Torch's own layers (linear, convolution, norms, elementwise activations) get their
tokens here: the program runs them. A layer of ours says itself how it batches:
``stack_key()`` is its token (None: it has no stacked form, and ``single_reason`` says
why), and its class's ``stacked(layers)`` builds the stacked form
(:mod:`regbench.reg.stacked`). An empty slot (``nn.Identity``) merges with a noise layer
(token prefix ``noise:``) at any rate, and with a per-batch skip (``skip:``), since that
layer at rate 0 is the identity: models that differ only in such rates share one program.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from torch import nn

from regbench.nn.cnn import CNN1d
from regbench.nn.mlp import MLP, ResidualBlock, ResMLP
from regbench.nn.resnet import ResNet
from regbench.nn.resnet_blocks import ConvResidualBlock, PadShortcut
from regbench.reg.stacked import MERGES_WITH_EMPTY

OPEN, SHORT, CLOSE = "res(", "|short", ")res"  # residual markers (no module)
POOL = "pool"  # global average pooling over the spatial dims
FLATTEN = "flatten"  # a conv net's (C, L) features as one vector per sample, c * L + l
#: how a batch (B, *input) becomes the first activation: flattened features (MLPs), a
#: signal as one channel (the 1-D CNN, ResNets on (B, L)), or the input's own channels
INPUTS = ("in:flat", "in:signal", "in:channels")
MARKERS = (OPEN, SHORT, CLOSE, POOL, *INPUTS)

ELEMENTWISE = (nn.ReLU, nn.GELU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.ELU, nn.SiLU)
BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
INSTANCENORMS = (nn.InstanceNorm1d, nn.InstanceNorm2d)
CONVS = (nn.Conv1d, nn.Conv2d)
MODELS = (MLP, ResMLP, CNN1d, ResNet)


def own_token(m: nn.Module) -> str | None:
    """The token of a layer that defines its stacked form (``stack_key``), or None."""
    key = getattr(m, "stack_key", None)
    return None if key is None else key()


def _same(values: tuple) -> int | None:
    """The one value of an isotropic setting ((3, 3) -> 3), or None if they differ."""
    return values[0] if len(set(values)) == 1 else None


def conv_token(m: nn.Conv1d | nn.Conv2d) -> str | None:
    """A plain convolution (zero padding, no dilation or groups, the same kernel, stride
    and padding on every spatial axis): its token, or None."""
    k, s, p = _same(m.kernel_size), _same(m.stride), _same(m.padding)
    plain = m.groups == 1 and set(m.dilation) == {1} and m.padding_mode == "zeros"
    if not plain or None in (k, s, p) or isinstance(m.padding, str):
        return None
    dims = 1 if type(m) is nn.Conv1d else 2
    return f"conv{dims}(k={k},s={s},p={p},bias={m.bias is not None})"


def leaf_token(m: nn.Module) -> str | None:
    """What a leaf module contributes to a group's signature; None: not batchable."""
    if type(m) is nn.Linear:
        return f"linear(bias={m.bias is not None})"
    if isinstance(m, nn.Linear):  # with weight noise (DropConnect), if it says how
        noise = own_token(m)
        return None if noise is None else f"linear(bias={m.bias is not None})+{noise}"
    if type(m) in CONVS:
        return conv_token(m)
    if type(m) in BATCHNORMS:  # the layout makes 1-D and 2-D the same op
        return f"bn(eps={m.eps},mom={m.momentum},affine={m.affine},track={m.track_running_stats})"
    if type(m) in INSTANCENORMS:
        if m.track_running_stats:
            return None
        return f"in(eps={m.eps},affine={m.affine})"
    if type(m) is nn.LayerNorm:
        return f"ln({tuple(m.normalized_shape)},eps={m.eps},affine={m.elementwise_affine})"
    if type(m) is nn.GroupNorm:
        return f"gn({m.num_groups},{m.num_channels},eps={m.eps},affine={m.affine})"
    if isinstance(m, ELEMENTWISE) and type(m).__module__.startswith("torch"):
        return f"act:{m!r}"  # applied as is: elementwise, so any leading axes work
    if type(m) is nn.Identity:
        return "id"
    if type(m) is nn.Flatten:
        return FLATTEN
    if type(m) is PadShortcut:
        return f"pad_shortcut(stride={m.stride},dims={m.dims})"
    return own_token(m)


def _walk(m: nn.Module) -> Iterator[nn.Module | str]:
    if isinstance(m, ResidualBlock):  # x + DropPath(branch(x)): no shortcut layers
        yield OPEN
        yield from _walk(m.branch)
        yield m.drop_path
        yield CLOSE
    elif isinstance(m, ConvResidualBlock):  # after_add(shortcut(x) + DropPath(branch(x)))
        yield OPEN
        yield from _walk(m.branch)
        yield m.drop_path
        yield SHORT
        yield from _walk(m.shortcut)
        yield CLOSE
        yield from _walk(m.after_add)
    elif list(m.children()):
        for child in m.children():
            yield from _walk(child)
    else:
        yield m


def _plan(model: nn.Module) -> list[str]:
    """Each model's forward as marker strings and the names of its child modules."""
    if isinstance(model, MLP):
        return ["in:flat", "input_drop", "blocks", "head_drop", "head"]
    if isinstance(model, ResMLP):
        return ["in:flat", "input_drop", "stem", "blocks", "final", "head_drop", "head"]
    if isinstance(model, CNN1d):
        return ["in:signal", "features", "head"]
    start = "in:signal" if model.add_channel else "in:channels"
    return [start, "input_drop", "stem", "stages", "final", POOL, "head_drop", "head"]


def leaves(model: nn.Module) -> list[nn.Module | str]:
    """Leaf modules in execution order, with the markers."""
    out: list[nn.Module | str] = []
    for step in _plan(model):
        if step in MARKERS:
            out.append(step)
        else:
            out.extend(_walk(getattr(model, step)))
    return out


def signature(model: nn.Module) -> tuple[str, ...] | str:
    """The model's op tokens, or a string saying why it cannot batch."""
    if type(model) not in MODELS:
        names = "mlp, resmlp, cnn1d, resnet_cifar, resnet18, wrn"
        return f"model {type(model).__name__} is not batched (only {names} are)"
    tokens = []
    for m in leaves(model):
        tok = m if isinstance(m, str) else leaf_token(m)
        if tok is None:
            why = getattr(m, "single_reason", None) or "it defines no stacked form"
            return f"layer {m!r} is not batched: {why}"
        tokens.append(tok)
    return tuple(tokens)


def merge_signatures(sigs: Sequence[tuple[str, ...]]) -> tuple[str, ...] | None:
    """One signature for all models (``id`` merged into a noise or skip slot), or None."""
    if len({len(s) for s in sigs}) != 1:
        return None
    out = []
    for tokens in zip(*sigs, strict=True):
        kinds = set(tokens) - {"id"}
        if len(kinds) > 1:
            return None
        if kinds and "id" in tokens and not next(iter(kinds)).startswith(MERGES_WITH_EMPTY):
            return None  # only an empty noise or skip slot merges (rate 0)
        out.append(kinds.pop() if kinds else "id")
    return tuple(out)


def is_conv_net(sig: Sequence[str]) -> bool:
    """Whether a signature has convolutions (and so a spatial layout)."""
    return any(t.startswith("conv") for t in sig)


def conv_dims(sig: Sequence[str]) -> int:
    """Spatial dims of a signature's convolutions: 0 (none), 1 or 2."""
    return max((int(t[4]) for t in sig if t.startswith("conv")), default=0)

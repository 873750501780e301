"""Unit ablation at test time: the co-adaptation probe.

Hinton et al. 2012 (arXiv 1207.0580) motivate dropout by co-adaptation: a unit of a
plain net may be useful only together with particular other units, while dropout makes
every unit work with random subsets of the others. If so, removing a random fraction of
the units of a trained net should hurt a dropout-trained net less. This probe removes,
in every activation layer at once, ``round(f * C)`` of its C units (the same units for
every test input; "ablating" means setting the unit's output to 0, with no rescaling of
the rest), and measures test accuracy, averaged over ``draws`` random subsets.

``diag/ablate_acc/<f>``: that mean accuracy for each fraction f.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from regbench.probes.evaluation import Batches, activation_layers, eval_accuracy


def unit_mask(channels: int, fraction: float, gen: torch.Generator) -> Tensor:
    """(C,) float mask with exactly ``round(fraction * C)`` zeros at random positions."""
    k = round(fraction * channels)
    mask = torch.ones(channels)
    mask[torch.randperm(channels, generator=gen)[:k]] = 0.0
    return mask


def _zero_units(mask: Tensor):
    """A forward hook multiplying the layer's output (B, C, *S) by ``mask`` over C."""

    def hook(_m: nn.Module, _inp, out: Tensor) -> Tensor:
        shape = (1, out.shape[1]) + (1,) * (out.dim() - 2)
        return out * mask.to(out.device, out.dtype).view(shape)

    return hook


@torch.no_grad()
def widths(model: nn.Module, data: Batches) -> list[int]:
    """The number of units (dim 1 of the output) of every activation layer, from one
    forward pass on the first batch."""
    layers, found = activation_layers(model), {}

    def record(m: nn.Module, _inp, out: Tensor) -> None:  # None: the output is kept
        found.setdefault(id(m), out.shape[1])

    hooks = [m.register_forward_hook(record) for m in layers]
    was_training = model.training
    model.eval()
    try:
        x, _ = next(iter(data))
        model(x)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return [found[id(m)] for m in layers]


def ablated_accuracy(
    model: nn.Module, data: Batches, fraction: float, draws: int, gen: torch.Generator
) -> float:
    """Mean test accuracy over ``draws`` random ablations of ``fraction`` of the units of
    every activation layer (the model is left as it was)."""
    layers, sizes = activation_layers(model), widths(model, data)
    accs = []
    for _ in range(draws):
        masks = [unit_mask(c, fraction, gen) for c in sizes]
        hooks = [
            m.register_forward_hook(_zero_units(k)) for m, k in zip(layers, masks, strict=True)
        ]
        try:
            accs.append(eval_accuracy(model, data))
        finally:
            for h in hooks:
                h.remove()
    return sum(accs) / len(accs)


def ablation_probe(
    model: nn.Module, data: Batches, fractions: Sequence[float], draws: int, gen_for
) -> dict[str, float]:
    """``diag/ablate_acc/<f>`` for every fraction; ``gen_for(purpose)`` gives the stream
    of each fraction, so adding a fraction does not change the others' draws."""
    if not activation_layers(model):
        return {}
    return {
        f"diag/ablate_acc/{f:g}": ablated_accuracy(
            model, data, f, draws, gen_for(f"ablation/{f:g}")
        )
        for f in fractions
    }

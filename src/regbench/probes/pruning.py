"""One-shot pruning at test time: does a weight's magnitude reflect its importance?

Han, Pool, Tran & Dally 2015 (arXiv 1506.02626) prune the weights of smallest magnitude,
layer by layer, and keep accuracy to high sparsity (with retraining; fig. 5 also shows
pruning without retraining, where L1-trained nets hold up better than L2-trained ones).
This probe prunes every weight matrix (``ndim > 1``: linear and conv weights; biases and
norm parameters stay) to sparsity s, each layer on its own, in a copy of the model, with
no retraining, and measures test accuracy:

- magnitude: the ``round(s * n)`` entries of smallest ``|w|`` of each matrix set to 0
  (ties broken by a stable sort of ``|w|``, so the choice is deterministic);
- random: ``round(s * n)`` entries chosen uniformly at random per matrix, the mean
  accuracy over ``draws`` choices (the baseline "magnitude carries no information").

``diag/prune_acc/magnitude/<s>`` and ``diag/prune_acc/random/<s>`` for each s.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from regbench.probes.evaluation import Batches, eval_accuracy


def weight_matrices(model: nn.Module) -> list[Tensor]:
    """Every weight with ``ndim > 1`` (linear (out, in), conv (out, in, *k))."""
    return [p for p in model.parameters() if p.ndim > 1]


def magnitude_indices(w: Tensor, sparsity: float) -> Tensor:
    """Flat indices of the ``round(sparsity * n)`` smallest ``|w|``."""
    k = round(sparsity * w.numel())
    return torch.argsort(w.detach().abs().flatten().cpu(), stable=True)[:k]


def random_indices(w: Tensor, sparsity: float, gen: torch.Generator) -> Tensor:
    """Flat indices of ``round(sparsity * n)`` entries drawn without replacement."""
    k = round(sparsity * w.numel())
    return torch.randperm(w.numel(), generator=gen)[:k]


@torch.no_grad()
def pruned_copy(model: nn.Module, choose) -> nn.Module:
    """A copy of ``model`` with ``choose(w)`` (flat indices) zeroed in every matrix."""
    pruned = copy.deepcopy(model)
    for w in weight_matrices(pruned):
        idx = choose(w).to(w.device)
        w.view(-1)[idx] = 0.0  # parameters are contiguous: view(-1) writes through
    return pruned


def pruning_probe(
    model: nn.Module, data: Batches, sparsities: Sequence[float], draws: int, gen_for
) -> dict[str, float]:
    """Test accuracy after magnitude and random pruning at each sparsity; ``gen_for``
    gives the random stream of each sparsity."""
    if not weight_matrices(model):
        return {}
    out = {}
    for s in sparsities:
        mag = pruned_copy(model, lambda w, s=s: magnitude_indices(w, s))
        out[f"diag/prune_acc/magnitude/{s:g}"] = eval_accuracy(mag, data)
        gen = gen_for(f"pruning/{s:g}")
        accs = [
            eval_accuracy(pruned_copy(model, lambda w, s=s, g=gen: random_indices(w, s, g)), data)
            for _ in range(draws)
        ]
        out[f"diag/prune_acc/random/{s:g}"] = sum(accs) / len(accs)
    return out

"""``regbench bench``: the full stack against a plain PyTorch loop, as ratios measured
in the same process (:mod:`~regbench.bench.mlp`, :mod:`~regbench.bench.resnet`)."""

from regbench.bench.mlp import main

__all__ = ["main"]

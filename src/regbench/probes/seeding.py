"""Random streams of the probes: one ``torch.Generator`` per (run seed, purpose).

A probe's random choices are a function of the run's seed and what they are for, so they
do not depend on the other runs of a batched group, on the order of the probes, or on
anything that drew from torch's global generator before (docs/ARCHITECTURE.md,
"Randomness"): the run's root stream (:mod:`regbench.streams`) split by ``"probe"`` and
the purpose, as every other draw of the run is.
"""

from __future__ import annotations

import torch

from regbench import streams


def generator(seed: int, purpose: str) -> torch.Generator:
    """A fresh CPU generator for ``purpose`` (``"ablation/0.25"``, ...); draws are moved to
    the model's device, so the same seed makes the same choices on a CPU and a GPU."""
    return streams.Stream.of_run(int(seed)).child("probe", purpose).fresh("cpu")

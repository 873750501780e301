"""Random streams of the probes: one ``torch.Generator`` per (run seed, purpose).

A probe's random choices are a function of the run's seed and what they are for, so they
do not depend on the other runs of a batched group, on the order of the probes, or on
anything that drew from torch's global generator before (DESIGN.md, "Randomness belongs
to the run"). The seed of the stream is a hash of both, as JAX splits a key per use.
"""

from __future__ import annotations

import hashlib

import torch


def stream_seed(seed: int, purpose: str) -> int:
    """A 63-bit seed from the run's seed and the purpose (``"ablation/0.25"``, ...)."""
    digest = hashlib.sha256(f"{int(seed)}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def generator(seed: int, purpose: str) -> torch.Generator:
    """A CPU generator for ``purpose``; draws are moved to the model's device, so the
    same seed makes the same choices on a CPU and a GPU."""
    return torch.Generator().manual_seed(stream_seed(seed, purpose))

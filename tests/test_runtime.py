"""Process-wide settings of :mod:`regbench.runtime`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

GLIBC = bool(getattr(os, "confstr", None) and os.confstr("CS_GNU_LIBC_VERSION"))

# In a fresh process (a test worker's heap already holds freed blocks that malloc would
# reuse whatever its thresholds): page faults per allocation, fill and free of a fresh
# 2.4 MB tensor (an activation of model_double_descent's width-300 group), in the steady
# state (glibc takes a few steps to settle after a change of setting: 7 here), first with
# glibc's smallest mmap threshold (its start, 128 KiB) held fixed, then after
# keep_freed_memory.
PROBE = """
import ctypes, resource, torch
from regbench import runtime

def faults_per_step(steps=20):
    for _ in range(10):
        torch.empty(600_000).fill_(1.0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        torch.empty(600_000).fill_(1.0)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / steps

assert ctypes.CDLL(None).mallopt(runtime.M_MMAP_THRESHOLD, 128 << 10)
fresh = faults_per_step()
kept = runtime.keep_freed_memory()
print(fresh, kept, faults_per_step())
"""


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_freed_tensor_memory_is_kept_so_a_step_touches_no_fresh_pages():
    """Every fresh tensor's 586 pages fault on first touch when malloc maps each block
    anew; after keep_freed_memory (what setup() does for every entry point) the same loop
    reuses the freed block: no fresh page per step."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    fresh, kept, after = out.stdout.split()
    assert float(fresh) > 500  # 2.4 MB / 4 KiB = 586 pages
    assert kept == "True"
    assert float(after) < 5

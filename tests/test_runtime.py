"""Process-wide settings of :mod:`regbench.runtime`."""

from __future__ import annotations

import ctypes
import os
import resource

import pytest
import torch

from regbench import runtime

GLIBC = bool(getattr(os, "confstr", None) and os.confstr("CS_GNU_LIBC_VERSION"))


def faults_per_step(steps: int = 20) -> float:
    """Page faults per allocation, fill and free of a fresh 2.4 MB tensor (an activation
    of model_double_descent's width-300 group), in the steady state (glibc takes a few
    steps to settle after a change of setting: 7 here)."""
    for _ in range(10):
        torch.empty(600_000).fill_(1.0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        torch.empty(600_000).fill_(1.0)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / steps


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_freed_tensor_memory_is_kept_so_a_step_touches_no_fresh_pages():
    """With glibc's smallest mmap threshold (its start, 128 KiB, held fixed) every fresh
    tensor's 586 pages fault on first touch; after keep_freed_memory (what setup() does for
    every entry point) the same loop reuses the freed block: no fresh page per step."""
    mallopt = ctypes.CDLL(None).mallopt
    try:
        assert mallopt(runtime.M_MMAP_THRESHOLD, 128 << 10)
        assert faults_per_step() > 500  # 2.4 MB / 4 KiB = 586 pages
        assert runtime.keep_freed_memory()
        assert faults_per_step() < 5
    finally:
        runtime.keep_freed_memory()  # the session's setting (conftest calls setup())

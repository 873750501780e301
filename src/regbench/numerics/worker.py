"""The process that runs the cases: ``python -m regbench.numerics.worker``.

A kernel bug can kill the process (a segmentation fault, glibc's heap-corruption abort)
or hang it, so the cases run here, away from the caller, which reads this protocol on
stdout, one line each:

    env {"torch": ..., "threads": ..., "cpu": ..., "isa": ...}   once, first
    start I                                                       before case I
    result I {"error": ..., "parameter": ..., "tolerance": ...}  after case I

Input on stdin: ``{"device": "cpu", "threads": 2, "cases": [Case.to_dict(), ...]}``.
"""

from __future__ import annotations

import faulthandler
import json
import os
import sys

import torch
from omegaconf import OmegaConf

from regbench.numerics.cases import INPUTS, Case
from regbench.numerics.step import step_error


def cpu_name() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo; the platform's processor elsewhere)."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: str, threads: int) -> dict:
    """What decides which kernels run: the CPU, its ISA, oneDNN's cap, threads, torch."""
    env = {
        "torch": torch.__version__,
        "threads": threads,
        "cpu": cpu_name(),
        "isa": torch.backends.cpu.get_cpu_capability(),  # ATen's: DEFAULT, AVX2, AVX512...
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", ""),
        "mkldnn": torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled,
    }
    if device == "cuda":
        env["gpu"] = torch.cuda.get_device_name()
    return env


def run_case(case: Case, device: str) -> dict:
    """Build the case's model and transform from its config, draw a batch, run the step."""
    from regbench.nn import build_model
    from regbench.reg import build_regularizers

    spec = INPUTS[case.inputs]
    cfg = OmegaConf.create({"model": case.model, "reg": case.reg})
    gen = torch.Generator().manual_seed(case.seed)
    x = torch.randn(spec.batch, *spec.shape, generator=gen)  # (B, *shape), normalised data
    y = torch.randint(0, 10, (spec.batch,), generator=gen)  # (B,) class indices
    # Weights and transform draw from the global generator (the builders' and transforms'
    # contract); fork_rng seeds a copy of it and puts it back afterwards.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(case.seed)
        model = build_model(cfg.model, spec.shape, 10)
        bundle = build_regularizers(cfg, 10)
        target = y
        for transform in bundle.transforms:  # applied once: both precisions see its draws
            x, target = transform(x, target)
        res = step_error(model, x, target, device)
    return {"error": res.error, "parameter": res.parameter, "tolerance": res.tolerance}


def main() -> None:
    faulthandler.enable()  # a crash names itself on stderr ("Fatal Python error: ...")
    job = json.load(sys.stdin)
    device, threads = job["device"], int(job["threads"])
    torch.set_num_threads(threads)
    if device == "cuda":
        # TF32 is an approximation by design (10-bit mantissa), not a float32 kernel; off,
        # so the check holds the CUDA kernels to float32's tolerance.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    print("env", json.dumps(environment(device, threads)), flush=True)
    for i, raw in enumerate(job["cases"]):
        print("start", i, flush=True)
        print("result", i, json.dumps(run_case(Case(**raw), device)), flush=True)


if __name__ == "__main__":
    main()

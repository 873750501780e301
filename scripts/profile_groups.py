"""Where a batched group's step time goes (issue 22): torch.profiler self-CPU time per
category of op for one epoch, one thread, and the unprofiled ms per epoch (min of E).

    uv run python scripts/profile_groups.py dd:300,dd:21x60,cnn1d,plain:cnn1d [E]

Presets: ``dd:W[xS]`` a model_double_descent group of width W (S models, default 20: 10
seeds x 2 noise arms); ``cnn1d``, ``resnet20``: ``regbench bench``'s groups (8 and 4
seeds); ``plain:<preset>``: the bench's plain PyTorch loop for its first seed. Shares are
steadier than absolute times on a shared machine; compare code by interleaved runs.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from regbench.batched.loop import GroupLoop
from regbench.batched.runs import build_member
from regbench.bench.mlp import _overrides, hand_loop
from regbench.config import compose

KERNELS = ("aten::bmm", "aten::baddbmm", "aten::mm", "aten::addmm", "aten::mkldnn_convolution")
CATS = {
    "GEMM/conv kernels": (*KERNELS, "aten::convolution_backward", "aten::_convolution"),
    "optimizer": ("aten::add_", "aten::addcmul_", "aten::mul_", "aten::addcmul", "aten::lerp_")
    + ("aten::sqrt", "aten::div", "aten::sub_", "aten::add", "aten::mul", "aten::div_"),
    "activation": ("aten::clamp_min", "aten::threshold_backward", "aten::relu"),
    "norm": ("aten::native_batch_norm", "aten::native_batch_norm_backward"),
    "copies (im2col, grads)": ("aten::cat", "aten::copy_", "aten::sum", "aten::fill_")
    + ("aten::zero_", "aten::constant_pad_nd", "aten::index_add_", "aten::slice_backward"),
    "loss+metrics": ("aten::_log_softmax", "aten::_log_softmax_backward_data", "aten::max")
    + ("aten::nll_loss2d_forward", "aten::nll_loss2d_backward", "aten::eq", "aten::mean"),
    "data": ("aten::index_select",),
}
OTHER = "other"
BENCH = {"cnn1d": (["model=cnn1d", "model.width=32"], 8), "resnet20": (["model=resnet20"], 4)}


def category(name: str) -> str:
    return next((c for c, names in CATS.items() if name in names), OTHER)


def preset(name: str) -> tuple[list, float | None]:
    """The group's configs and its training FLOP per epoch (MLPs only)."""
    if name.startswith("dd:"):
        w, _, s = name[3:].partition("x")
        w, S = int(w), int(s or 20)
        cfgs = [
            compose(
                ["experiment=model_double_descent", f"model.width={w}", f"seed={i // 2}"]
                + [f"data.label_noise={0.15 if i % 2 == 0 else 0.0}"]
            )
            for i in range(S)
        ]
        return cfgs, 6 * 4000 * S * (40 * w + w * w + 10 * w)
    extra, S = BENCH[name]
    if name == "resnet20":
        extra = [*extra, "model.width=16"]
    base = [o for o in _overrides(128, 20) if not o.startswith("model.")]
    return [compose([*base, *extra, f"seed={s}"]) for s in range(S)], None


def shares(prof) -> dict[str, float]:
    tot: dict[str, float] = defaultdict(float)
    for ev in prof.key_averages():
        tot[category(ev.key)] += ev.self_cpu_time_total
    return tot


def row(label: str, ms: str, rate: str, tot: dict[str, float], per: float) -> str:
    total = sum(tot.values())
    cells = [f"{tot[c] / 1e3 / per:.1f} ({100 * tot[c] / total:.0f}%)" for c in [*CATS, OTHER]]
    return f"| {label} | {ms} | {rate} | " + " | ".join(cells) + " |"


def main(names: list[str], epochs: int) -> None:
    torch.set_num_threads(1)
    print("| group | ms/epoch | GFLOP/s | " + " | ".join([*CATS, OTHER]) + " |")
    print("|---" * (3 + len(CATS) + 1) + "|")
    for name in names:
        if name.startswith("plain:"):
            cfg = preset(name[6:])[0][0]
            hand_loop(cfg)
            with profile(activities=[ProfilerActivity.CPU]) as p:
                hand_loop(cfg)
            epochs_run = int(cfg.trainer.max_epochs)
            print(row(f"{name}, 1 seed", "-", "-", shares(p), epochs_run), flush=True)
            continue
        cfgs, flop = preset(name)
        loop = GroupLoop([build_member(c, [], None) for c in cfgs], "cpu")
        loop.train_epoch(0)
        times = []
        for e in range(epochs):
            t = time.perf_counter()
            loop.train_epoch(e)
            times.append(time.perf_counter() - t)
        ms = min(times) * 1e3
        with profile(activities=[ProfilerActivity.CPU]) as p:
            loop.train_epoch(0)
        rate = f"{flop / ms / 1e6:.0f}" if flop else "-"
        print(row(f"{name} S={len(cfgs)}", f"{ms:.1f}", rate, shares(p), 1.0), flush=True)


if __name__ == "__main__":
    main(sys.argv[1].split(","), int(sys.argv[2]) if len(sys.argv) > 2 else 3)

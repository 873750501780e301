"""``regbench bench``: the full stack against a hand-written PyTorch loop, same run.

Both train the MNIST-1D MLP (2 hidden ReLU layers, Adam, batch 128, 20 epochs) on the
same data in the same batch order, evaluate the validation split every epoch and the
test split at the end. The full stack is ``regbench.train.run``: Lightning, our module,
MLflow logging every epoch (run creation, params and config artifact included). The
hand loop is what one would write without any framework. Each line prints the median
of ``--reps`` repetitions and ``ratio = full stack time / hand loop time``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from regbench.config import compose
from regbench.data import build_data
from regbench.data.batches import TensorBatches
from regbench.nn import build_model

TARGETS = {128: 2.0, 512: 1.25}


def _overrides(width: int, epochs: int) -> list[str]:
    return [
        "model.depth=2",
        f"model.width={width}",
        "optim=adam",
        "scheduler=constant",
        "data.batch_size=128",
        f"trainer.max_epochs={epochs}",
        "trainer.progress_bar=false",
        "diag.enabled=false",  # end-of-run diagnostics are extra work the hand loop skips
        "experiment_name=bench",
    ]


@torch.no_grad()
def _evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    acc = (logits.argmax(1) == y).float().mean()
    return float(loss), float(acc)


def hand_loop(cfg) -> float:
    """Seconds for a plain PyTorch loop doing the same work as the full stack."""
    start = time.perf_counter()  # data loading counts on both sides
    torch.manual_seed(cfg.seed)
    splits = build_data(cfg.data, cfg.seed)
    model = build_model(cfg.model, splits.input_shape, splits.num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)
    batches = TensorBatches(
        splits.x_train, splits.y_train, cfg.data.batch_size, shuffle=True, seed=cfg.seed
    )
    for _ in range(cfg.trainer.max_epochs):
        model.train()
        sums = torch.zeros(2)  # train loss and accuracy, the metrics the full stack logs
        for x, y in batches:
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            acc = (logits.argmax(1) == y).float().mean()
            sums += torch.stack([loss.detach(), acc]) * len(y)
        _ = (sums / len(splits.y_train)).tolist()
        _evaluate(model, splits.x_val, splits.y_val)
    _evaluate(model, splits.x_test, splits.y_test)
    return time.perf_counter() - start


def full_stack(cfg) -> float:
    from regbench.train import run

    start = time.perf_counter()
    run(cfg, ["bench"])
    return time.perf_counter() - start


def bench_mlp(
    width: int, reps: int, epochs: int, extra: list[str] | None = None
) -> tuple[float, float, float]:
    cfg = compose(_overrides(width, epochs) + list(extra or []))
    full_stack(cfg)  # warm-up: store creation, first-call import costs
    hand_loop(cfg)
    full, hand = [], []
    for _ in range(reps):
        hand.append(hand_loop(cfg))
        full.append(full_stack(cfg))
    f, h = statistics.median(full), statistics.median(hand)
    return f, h, f / h


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="regbench bench",
        description=(
            "Time the full stack against a hand-written PyTorch loop doing the same run.\n\n"
            "Both train the MNIST-1D MLP (2 hidden ReLU layers, Adam, batch 128) on the same\n"
            "data in the same batch order; the full stack is `regbench train` (Lightning,\n"
            "MLflow logging every epoch). Each line prints the median of --reps repetitions\n"
            "and ratio = full stack time / hand loop time. Time it on a quiet machine."
        ),
        epilog=(
            "examples:\n"
            "  regbench bench\n"
            "  regbench bench --widths 128 --no-resnet --no-batched --reps 5\n"
            "  regbench bench trainer.steps_per_call=1     # Lightning's automatic optimization"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--reps", type=int, default=3, help="repetitions per measurement, median (default: 3)"
    )
    p.add_argument("--epochs", type=int, default=20, help="epochs per run (default: 20)")
    p.add_argument(
        "--widths",
        type=int,
        nargs="*",
        default=[128, 512],
        help="MLP widths to time, one line each (default: 128 512)",
    )
    p.add_argument(
        "overrides",
        nargs="*",
        help="extra Hydra overrides for the MLP runs, e.g. trainer.steps_per_call=1",
    )
    p.add_argument(
        "--resnet",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time ResNet-20 on CIFAR-shaped tensors (default: yes)",
    )
    p.add_argument(
        "--batched",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time batched groups (8 seeds of the width-128 MLP, 8 of cnn1d width 32, 4 of "
        "the 1-D ResNet-20), each as one program against one seed's plain loop (default: yes)",
    )
    args = p.parse_args(argv)
    extra = f", overrides: {' '.join(args.overrides)}" if args.overrides else ""
    print(
        f"torch threads: {torch.get_num_threads()}, reps: {args.reps} (median){extra}",
        flush=True,
    )
    for width in args.widths:
        f, h, ratio = bench_mlp(width, args.reps, args.epochs, args.overrides)
        target = TARGETS.get(width)
        verdict = ""
        if target is not None:
            verdict = f" (target <= {target:.2f}: {'ok' if ratio <= target else 'MISSED'})"
        print(
            f"mlp width={width:<4d} epochs={args.epochs} full_stack={f:.3f}s "
            f"hand_loop={h:.3f}s{verdict} ratio={ratio:.3f}",
            flush=True,
        )
    if args.batched:
        from regbench.bench.batched import GROUPS, bench_batched

        base = _overrides(128, args.epochs) + list(args.overrides)
        for group in GROUPS:
            print(bench_batched(base, hand_loop, group, args.reps, args.epochs), flush=True)
    if args.resnet:
        try:
            from regbench.bench.resnet import bench_resnet20
        except ImportError:
            print("resnet20: not available yet")
        else:
            print(bench_resnet20(args.reps), flush=True)

"""ResNet-20 throughput: the full stack against a hand-written PyTorch loop.

Both train ResNet-20 (He et al. 2016, arXiv 1512.03385) with SGD on the same CIFAR-shaped
random uint8 images (3 x 32 x 32, 10 classes), in the same batch order, with the same
batched crop + flip augmentation, normalised on the device; both end with one pass over
a small test set. The full stack is :func:`regbench.train.run` itself (Lightning, our
module, the MLflow run and epoch logger; diagnostics off) on a synthetic data set
(``data=random_images``, :mod:`regbench.data.synthetic`); the hand loop is what one
would write without any framework.

Timed: the fit, from Lightning's ``setup`` to ``on_fit_end`` (per-epoch MLflow logging
included), against the hand loop's training epochs (moving the data to the device and
building the optimizer included). The MLflow run creation and the test pass are per-run
constants outside both clocks; the whole ``run`` call is printed as ``run=``.
"""

from __future__ import annotations

import statistics
import time

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from regbench.data.batches import TensorBatches
from regbench.nn import build_model
from regbench.reg.augment_image import crop_flip


def bench_config(n_images: int, batch_size: int, epochs: int) -> DictConfig:
    from regbench.config import compose

    cfg = compose(
        [
            "data=random_images",
            f"data.n_train={n_images}",
            "data.n_test=256",
            f"data.batch_size={batch_size}",
            "model=resnet20",
            "optim=sgd",
            "optim.lr=0.05",
            "scheduler=constant",
            "reg=[crop_flip]",
            f"trainer.max_epochs={epochs}",
            "trainer.progress_bar=false",
            "trainer.limit_val_batches=0",
            "experiment_name=bench",
        ]
    )
    cfg.diag.enabled = False  # diagnostics are extra passes over the data, not training
    return cfg


class _FitClock(pl.Callback):
    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit":
            self.start = time.perf_counter()

    def on_fit_end(self, trainer, pl_module) -> None:
        self.seconds = time.perf_counter() - self.start


def full_stack(cfg: DictConfig) -> tuple[float, float]:
    """(fit seconds, whole run seconds) of ``regbench.train.run``."""
    from regbench.train import run

    clock = _FitClock()
    start = time.perf_counter()
    run(cfg, ["bench"], callbacks=[clock])
    return clock.seconds, time.perf_counter() - start


def hand_loop(cfg: DictConfig) -> float:
    """Seconds of a plain PyTorch loop doing the same training as the full stack."""
    from regbench.data import build_data

    pl.seed_everything(cfg.seed, verbose=False)
    splits = build_data(cfg.data, cfg.seed)
    model = build_model(cfg.model, splits.input_shape, splits.num_classes)
    # The flags Lightning sets for trainer.deterministic, so both run the same kernels.
    torch.use_deterministic_algorithms(bool(cfg.trainer.deterministic))
    torch.backends.cudnn.benchmark = False
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    pad = cfg.reg.crop_flip
    start = time.perf_counter()
    model.to(device)
    mean = torch.tensor(splits.mean, device=device).view(1, -1, 1, 1) * 255
    std = torch.tensor(splits.std, device=device).view(1, -1, 1, 1) * 255
    opt = torch.optim.SGD(model.parameters(), lr=cfg.optim.lr, momentum=cfg.optim.momentum)
    batches = TensorBatches(
        splits.x_train, splits.y_train, cfg.data.batch_size, shuffle=True, seed=cfg.seed
    )
    batches.to(device)
    for _ in range(cfg.trainer.max_epochs):
        model.train()
        loss_sum = torch.zeros((), device=device)
        acc_sum = torch.zeros((), device=device)
        for x, y in batches:
            x = crop_flip((x.float() - mean) / std, pad.padding, pad.flip, pad.fill)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach() * len(y)
            acc_sum += (logits.argmax(1) == y).float().sum()
        _ = float(loss_sum), float(acc_sum)  # one sync per epoch, as the epoch logger
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():  # the test pass, as the full stack does (not timed there either)
        model((splits.x_test.to(device).float() - mean) / std).argmax(1)
    return seconds


def bench_resnet20(
    reps: int = 3, n_images: int = 2048, batch_size: int = 128, epochs: int = 1
) -> str:
    """One line: images/s of both and ``ratio=<full stack time / hand loop time>``,
    medians over ``reps`` after one warm-up of each."""
    warm = bench_config(batch_size, batch_size, 1)  # one batch: store, first-call costs
    full_stack(warm)
    hand_loop(warm)
    cfg = bench_config(n_images, batch_size, epochs)
    full, runs, hand = [], [], []
    for _ in range(reps):
        hand.append(hand_loop(cfg))
        fit, total = full_stack(cfg)
        full.append(fit)
        runs.append(total)
    f, h, r = statistics.median(full), statistics.median(hand), statistics.median(runs)
    n = n_images * epochs
    return (
        f"resnet20 images={n_images} batch={batch_size} epochs={epochs} "
        f"full_stack={n / f:.0f}img/s ({f:.3f}s, run={r:.3f}s) "
        f"hand_loop={n / h:.0f}img/s ({h:.3f}s) ratio={f / h:.3f}"
    )

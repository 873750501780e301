"""Linear teacher-student with fast and slow features, many data draws in one batched
LightningModule (Pezeshki et al., ICML 2022, arXiv 2112.03215).

Per draw b: z ~ N(0, I_d) (n, d), teacher y = z w*_b with w*_b ~ N(0, I/d); the student
sees x = z F, F = diag(f), f = 1 on the first ``fast_dims`` features and 1/sqrt(kappa)
on the rest, and fits y by full-batch gradient descent on 0.5 * mean (x w - y)^2 with step
eta_b = 1 / lambda_max(X_b^T X_b / n). Heckel & Yilmaz (ICLR 2021, arXiv 2007.10099):
scaling the fast features' step by ``fast_lr_scale`` = 1/kappa equalises the learning
speeds and removes the bump. Population test error (noise-free teacher): |w* - f * w|^2.

Lightning costs ~0.4 ms per step, more than one GD step here, so the draws share every
step (tensors (B, d, d)), one Lightning step runs the GD steps between two log-spaced
record points, and metrics are computed only there.
"""

from __future__ import annotations

import math

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor


def log_steps(steps: int, n_log: int) -> list[int]:
    """About ``n_log`` distinct steps, log-spaced from 1 to ``steps`` (both included)."""
    return sorted({int(round(s)) for s in np.geomspace(1, steps, n_log)})


def make_draws(
    draws: int, n: int, d: int, fast_dims: int, kappa: float, noise: float, seed: int = 0
) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(seed)
    f = torch.ones(d, dtype=torch.float64)
    f[fast_dims:] = kappa**-0.5
    w_star = torch.randn(draws, d, generator=g, dtype=torch.float64) / math.sqrt(d)
    z = torch.randn(draws, n, d, generator=g, dtype=torch.float64)
    y = torch.einsum("bnd,bd->bn", z, w_star)  # (B, n)
    y = y + noise * torch.randn(draws, n, generator=g, dtype=torch.float64)
    return {"x": z * f, "y": y, "w_star": w_star, "f": f}


class Chunks:
    """Dataloader: one item per recorded step, the number of GD steps to take before it
    (the data itself lives in the module's buffers)."""

    def __init__(self, record_at: list[int]) -> None:
        self.gaps = [b - a for a, b in zip([0, *record_at], record_at, strict=False)]

    def __len__(self) -> int:
        return len(self.gaps)

    def __iter__(self):
        yield from (torch.tensor(g) for g in self.gaps)


class FullBatchGD(pl.LightningModule):
    """Full-batch gradient descent of many draws at once, without an optimizer: each
    Lightning step (a :class:`Chunks` item) runs :meth:`gd_step` that many times, then
    records the per-draw :meth:`test_error` and :meth:`train_mse` at the step reached."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.t = 0  # GD steps taken
        self.records: list[tuple[int, dict[str, float]]] = []

    def gd_step(self) -> None:
        """One full-batch GD step of every draw."""
        raise NotImplementedError

    def test_error(self) -> Tensor:
        """Per-draw test error, (B,)."""
        raise NotImplementedError

    def train_mse(self) -> Tensor:
        """Per-draw mean squared error on the training set, (B,)."""
        raise NotImplementedError

    @torch.no_grad()
    def training_step(self, batch: Tensor, batch_idx: int) -> None:
        for _ in range(int(batch)):
            self.gd_step()
        self.t += int(batch)
        self.records.append((self.t, record(self.test_error(), self.train_mse())))

    def configure_optimizers(self):
        return None  # plain gradient descent in training_step


class TeacherStudent(FullBatchGD):
    """All draws' students as one (B, d) weight, fitted by full-batch GD with the gradient
    in closed form, S w - X^T y / n, so a GD step is one batched matrix-vector product."""

    def __init__(self, data: dict[str, Tensor], fast_dims: int, fast_lr_scale: float) -> None:
        super().__init__()
        x, y = data["x"], data["y"]  # (B, n, d), (B, n)
        n = x.shape[1]
        self.register_buffer("x", x)
        self.register_buffer("y", y)
        self.register_buffer("w_star", data["w_star"])
        self.register_buffer("f", data["f"])
        cov = x.transpose(1, 2) @ x / n  # (B, d, d)
        self.register_buffer("cov", cov)
        self.register_buffer("xty", (x.transpose(1, 2) @ y[..., None]) / n)  # (B, d, 1)
        eta = 1.0 / torch.linalg.eigvalsh(cov)[:, -1]  # (B,) step 1/lambda_max per draw
        scale = torch.ones(x.shape[2], dtype=x.dtype)
        scale[:fast_dims] = fast_lr_scale
        self.register_buffer("step", (eta[:, None] * scale)[..., None])  # (B, d, 1)
        self.w = torch.nn.Parameter(
            torch.zeros(x.shape[0], x.shape[2], 1, dtype=x.dtype), requires_grad=False
        )

    def test_error(self) -> Tensor:
        """Population squared error per draw, (B,)."""
        return (self.w_star - self.f * self.w[..., 0]).square().sum(1)

    def train_mse(self) -> Tensor:
        resid = (self.x @ self.w)[..., 0] - self.y  # (B, n)
        return resid.square().mean(1)

    @torch.no_grad()
    def gd_step(self) -> None:
        # grad of 0.5 * mean (x w - y)^2 = cov w - X^T y / n; w -= step * grad
        w = self.w.data
        w.sub_(self.step * torch.baddbmm(self.xty, self.cov, w, beta=-1))


def train(
    data: dict[str, Tensor], fast_dims: int, fast_lr_scale: float, steps: int, n_log: int
) -> list[tuple[int, dict[str, float]]]:
    """Train all draws for ``steps`` full-batch steps; the records at log-spaced steps."""
    return fit_at_log_steps(TeacherStudent(data, fast_dims, fast_lr_scale), steps, n_log)


def record(test_err: Tensor, train_mse: Tensor) -> dict[str, float]:
    """One record point: per-draw test error and train MSE, and the mean test error."""
    err, mse = test_err.tolist(), train_mse.tolist()
    rec = {f"draw/{b}/test_err": e for b, e in enumerate(err)}
    rec.update({f"draw/{b}/train_mse": m for b, m in enumerate(mse)})
    rec["test/err"] = sum(err) / len(err)
    return rec


def fit_at_log_steps(
    module: pl.LightningModule, steps: int, n_log: int
) -> list[tuple[int, dict[str, float]]]:
    """Fit a full-batch module whose dataloader items are the GD steps between record
    points (:class:`Chunks`); its records at the log-spaced steps."""
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, train_dataloaders=Chunks(log_steps(steps, n_log)))
    return module.records

"""Two-layer ReLU network with per-layer step sizes, many data draws in one batched
LightningModule (Heckel & Yilmaz, "Early stopping in deep networks: double descent and
how to eliminate it", ICLR 2021, arXiv 2007.10099).

Model (their two-layer section and Fig. 3, left; here with the NTK factor 1/sqrt(k)):
f(x) = v^T relu(W x) / sqrt(k), W in R^{k x d}, v in R^k, fitted by full-batch gradient
descent on 0.5 * mean_i (f(x_i) - y_i)^2 with one step size per layer. Near its
initialisation the network is a kernel method whose kernel is the sum of one kernel per
layer (their Fig. 3, right: K1 for the first layer, K2 for the output layer), each
weighted by its layer's step size and init scale: each layer has its own bias-variance
trade-off over time, and when one layer learns much faster than the other the two
trade-offs superimpose to an epoch-wise double descent. Reducing the faster layer's step
size removes the bump.

Setup (the paper's n = 100, d = 50, k = 250; everything else chosen here, see
conf/experiment/epoch_double_descent.yaml): x ~ N(0, I_d), teacher y = theta . x with
theta ~ N(0, I/d), label noise N(0, noise^2) on the training labels; test error = mean
squared error against the noise-free teacher on ``n_test`` fresh inputs per draw.
Init: the rows of W are ``w_scale`` * g / sqrt(d) for g ~ N(0, I_d), drawn for only
``directions`` distinct g that the k units share round-robin, and v ~ N(0, v_scale^2).
With w_scale >> v_scale the output layer is the fast one (its kernel block scales with
w_scale^2, the first layer's with v_scale^2; the authors' code makes the same split with
init scales (1, 0.01) for the two layers and one step size), and because the k units
share ``directions`` < n first-layer directions the output layer alone is a
``directions``-feature random-features least-squares fit that cannot interpolate: it
over-fits first (the bump), then the slow first layer separates the
units sharing a direction and adds the capacity that brings the error down again. With
k independent first-layer rows (the usual init) the output layer alone interpolates and
the error only over-fits: measured on 20 draws with the settings of the config but
``directions`` = k = 250, min 0.44 at t=152, then 0.57 at t=5000, no second descent. The
authors' own setting (their repository MLI-lab/early_stopping_double_descent, notebook
early_stopping_two-layer-nn_double_descent.ipynb: anisotropic inputs, noise-free linear
teacher, PyTorch default init scaled by (1, 0.01), one step size vs the first layer's
reduced), rerun here on 8 draws, gave no significant bump (0.29 +- 0.75, an oscillation
at the edge of stability).

Step size: eta_b = ``lr`` / lambda_max(Theta_b / n) per draw b, Theta the network's
tangent-kernel Gram matrix at init on the training inputs; the first layer steps with
eta_b * ``lr_w_scale``, the output layer with eta_b * ``lr_v_scale``.

As in :mod:`teacher_student`, the draws share every step (tensors (B, ...)), one
Lightning step runs the GD steps between two log-spaced record points, and metrics are
computed only there.
"""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
from torch import Tensor

from regbench.reproductions.teacher_student import fit_at_log_steps, record


def make_draws(
    draws: int,
    n: int,
    d: int,
    hidden: int,
    directions: int,
    noise: float,
    w_scale: float,
    v_scale: float,
    n_test: int,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> dict[str, Tensor]:
    """Data and initial weights of ``draws`` independent teacher-student problems (drawn in
    float64, then cast, so that every dtype sees the same draws)."""
    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    theta = torch.randn(draws, d, generator=g, dtype=f64) / math.sqrt(d)
    x = torch.randn(draws, n + n_test, d, generator=g, dtype=f64)
    y = torch.einsum("bnd,bd->bn", x, theta)
    y_train = y[:, :n] + noise * torch.randn(draws, n, generator=g, dtype=f64)
    rows = torch.randn(draws, directions, d, generator=g, dtype=f64)
    w0 = w_scale * rows[:, torch.arange(hidden) % directions] / math.sqrt(d)  # (B, k, d)
    v0 = v_scale * torch.randn(draws, hidden, generator=g, dtype=f64)
    out = {
        "x": x[:, :n],
        "y": y_train,
        "x_test": x[:, n:],
        "y_test": y[:, n:],
        "w0": w0,
        "v0": v0,
    }
    return {k: t.to(dtype).contiguous() for k, t in out.items()}


def forward(x: Tensor, w: Tensor, v: Tensor) -> Tensor:
    """f(x) = v^T relu(W x) / sqrt(k) for every draw: x (B, n, d), w (B, k, d), v (B, k)."""
    return torch.bmm(torch.relu(torch.bmm(x, w.transpose(1, 2))), v[..., None])[..., 0] / (
        math.sqrt(w.shape[1])
    )


def gradients(x: Tensor, y: Tensor, w: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of 0.5 * mean_i (f(x_i) - y_i)^2 w.r.t. W and v per draw, in closed form
    (three batched matrix products), and the residuals f - y."""
    n, sk = x.shape[1], math.sqrt(w.shape[1])
    h = torch.bmm(x, w.transpose(1, 2))  # (B, n, k) pre-activations
    a = h.clamp(min=0)
    resid = torch.bmm(a, v[..., None])[..., 0] / sk - y  # (B, n)
    r = resid / n
    grad_v = torch.bmm(a.transpose(1, 2), r[..., None])[..., 0] / sk  # (B, k)
    back = (h > 0) * (r[..., None] * (v / sk)[:, None, :])  # dL/dh, (B, n, k)
    grad_w = torch.bmm(back.transpose(1, 2), x)  # (B, k, d)
    return grad_w, grad_v, resid


def tangent_kernel(x: Tensor, w: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """The per-layer tangent-kernel Gram matrices (first layer, output layer), (B, n, n)."""
    k = w.shape[1]
    h = torch.bmm(x, w.transpose(1, 2))
    a, on = h.clamp(min=0), (h > 0).to(x.dtype)
    k_out = torch.bmm(a, a.transpose(1, 2)) / k
    k_first = torch.bmm(on * v[:, None, :] ** 2, on.transpose(1, 2)) / k
    return k_first * torch.bmm(x, x.transpose(1, 2)), k_out


class TwoLayer(pl.LightningModule):
    """All draws' networks as one (B, k, d) first layer and one (B, k) output layer; each
    Lightning step runs the full-batch GD steps up to the next recorded step, then records
    the per-draw test error and train MSE."""

    def __init__(
        self, data: dict[str, Tensor], lr: float, lr_w_scale: float, lr_v_scale: float
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        for key in ("x", "y", "x_test", "y_test"):
            self.register_buffer(key, data[key])
        self.w = torch.nn.Parameter(data["w0"].clone(), requires_grad=False)
        self.v = torch.nn.Parameter(data["v0"].clone(), requires_grad=False)
        k_first, k_out = tangent_kernel(self.x, self.w, self.v)
        n = self.x.shape[1]
        eta = lr / torch.linalg.eigvalsh((k_first + k_out) / n)[:, -1]  # (B,)
        self.register_buffer("step_w", (eta * lr_w_scale)[:, None, None])
        self.register_buffer("step_v", (eta * lr_v_scale)[:, None])
        self.t = 0  # GD steps taken
        self.records: list[tuple[int, dict[str, float]]] = []

    def test_error(self) -> Tensor:
        """Mean squared error against the noise-free teacher on the test inputs, (B,)."""
        return (forward(self.x_test, self.w, self.v) - self.y_test).square().mean(1)

    @torch.no_grad()
    def gd_step(self) -> Tensor:
        """One full-batch GD step of every draw; returns the residuals before the step."""
        grad_w, grad_v, resid = gradients(self.x, self.y, self.w, self.v)
        self.w.sub_(self.step_w * grad_w)
        self.v.sub_(self.step_v * grad_v)
        return resid

    @torch.no_grad()
    def training_step(self, batch: Tensor, batch_idx: int) -> None:
        for _ in range(int(batch)):
            self.gd_step()
        self.t += int(batch)
        mse = (forward(self.x, self.w, self.v) - self.y).square().mean(1)
        self.records.append((self.t, record(self.test_error(), mse)))

    def configure_optimizers(self):
        return None  # plain gradient descent in training_step


def train(
    data: dict[str, Tensor],
    lr: float,
    lr_w_scale: float,
    lr_v_scale: float,
    steps: int,
    n_log: int,
) -> list[tuple[int, dict[str, float]]]:
    """Train all draws for ``steps`` full-batch steps; the records at log-spaced steps."""
    return fit_at_log_steps(TwoLayer(data, lr, lr_w_scale, lr_v_scale), steps, n_log)

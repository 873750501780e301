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
authors' own setting is :class:`AuthorsTwoLayer` below; the reproduction judges it as the
finding and this constructed instance as an illustration.

Step size: eta_b = ``lr`` / lambda_max(Theta_b / n) per draw b, Theta the network's
tangent-kernel Gram matrix at init on the training inputs; the first layer steps with
eta_b * ``lr_w_scale``, the output layer with eta_b * ``lr_v_scale``.

The authors' setting (their repository MLI-lab/early_stopping_double_descent, notebook
notebooks/early_stopping_two-layer-nn_double_descent.ipynb, the cell's arguments ``-t
50000 -w 1 0.01 --lr 0.000001 0.00008 -d 50 -n 100 --hidden 250 --sigmas geo --s-range 1
4``, and code/linear_utils.py): x_j ~ N(0, sigma_j^2) with sigma geometric from 1 to 4 over
the d = 50 inputs, noise-free teacher y = x . beta, beta ~ N(0, I); Linear(50, 250) - ReLU
- Linear(250, 1) with biases, PyTorch's default init except the weights: kaiming_normal
(a = sqrt 5) x 1 for the first layer, kaiming_uniform (a = sqrt 5) x 0.01 for the output
layer; full-batch GD on the summed squared error; the "same stepsize" arm steps every
parameter by 8e-5, the "scaled stepsize" arm the first layer (weights and bias) by 1e-6;
risk = mean absolute error on fresh inputs (their ``--risk-loss L1``), here divided by the
zero predictor's, mean |y|, so that a tolerance is a fraction of the teacher's scale
(:class:`AuthorsTwoLayer`).

As in :mod:`teacher_student`, the draws share every step (tensors (B, ...)), one
Lightning step runs the GD steps between two log-spaced record points, and metrics are
computed only there.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from regbench.reproductions.teacher_student import FullBatchGD, fit_at_log_steps


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


class TwoLayer(FullBatchGD):
    """All draws' networks as one (B, k, d) first layer and one (B, k) output layer,
    fitted by full-batch GD with one step size per layer."""

    def __init__(
        self, data: dict[str, Tensor], lr: float, lr_w_scale: float, lr_v_scale: float
    ) -> None:
        super().__init__()
        for key in ("x", "y", "x_test", "y_test"):
            self.register_buffer(key, data[key])
        self.w = torch.nn.Parameter(data["w0"].clone(), requires_grad=False)
        self.v = torch.nn.Parameter(data["v0"].clone(), requires_grad=False)
        k_first, k_out = tangent_kernel(self.x, self.w, self.v)
        n = self.x.shape[1]
        eta = lr / torch.linalg.eigvalsh((k_first + k_out) / n)[:, -1]  # (B,)
        self.register_buffer("step_w", (eta * lr_w_scale)[:, None, None])
        self.register_buffer("step_v", (eta * lr_v_scale)[:, None])

    def test_error(self) -> Tensor:
        """Mean squared error against the noise-free teacher on the test inputs, (B,)."""
        return (forward(self.x_test, self.w, self.v) - self.y_test).square().mean(1)

    def train_mse(self) -> Tensor:
        return (forward(self.x, self.w, self.v) - self.y).square().mean(1)

    @torch.no_grad()
    def gd_step(self) -> Tensor:
        """One full-batch GD step of every draw; returns the residuals before the step."""
        grad_w, grad_v, resid = gradients(self.x, self.y, self.w, self.v)
        self.w.sub_(self.step_w * grad_w)
        self.v.sub_(self.step_v * grad_v)
        return resid


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


def make_authors_draws(
    draws: int,
    n: int,
    d: int,
    hidden: int,
    s_range: tuple[float, float],
    w_scale: float,
    v_scale: float,
    n_test: int,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> dict[str, Tensor]:
    """Data and initial parameters of ``draws`` problems in the authors' setting (drawn in
    float64, then cast). Init as PyTorch's Linear with the authors' re-initialized weights:
    kaiming_normal(a = sqrt 5) has sd sqrt(1/3) / sqrt(fan_in), kaiming_uniform(a = sqrt 5)
    the bound 1 / sqrt(fan_in), as the biases' default."""
    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    sigma = torch.logspace(math.log10(s_range[0]), math.log10(s_range[1]), d, dtype=f64)
    beta = torch.randn(draws, d, generator=g, dtype=f64)
    x = torch.randn(draws, n + n_test, d, generator=g, dtype=f64) * sigma  # (B, n + n_test, d)
    y = torch.einsum("bnd,bd->bn", x, beta)  # noise-free teacher

    def uniform(shape, bound: float) -> Tensor:
        return (2 * torch.rand(*shape, generator=g, dtype=f64) - 1) * bound

    out = {
        "x": x[:, :n],
        "y": y[:, :n],
        "x_test": x[:, n:],
        "y_test": y[:, n:],
        "w0": w_scale
        * math.sqrt(1 / 3)
        / math.sqrt(d)
        * torch.randn(draws, hidden, d, generator=g, dtype=f64),
        "b0": uniform((draws, hidden), 1 / math.sqrt(d)),
        "v0": v_scale * uniform((draws, hidden), 1 / math.sqrt(hidden)),
        "c0": uniform((draws,), 1 / math.sqrt(hidden)),
    }
    return {k: t.to(dtype).contiguous() for k, t in out.items()}


def authors_forward(x: Tensor, w: Tensor, b: Tensor, v: Tensor, c: Tensor) -> Tensor:
    """relu(x W^T + b) v + c per draw: x (B, n, d), w (B, k, d), b, v (B, k), c (B,)."""
    return (
        torch.bmm(torch.relu(torch.bmm(x, w.transpose(1, 2)) + b[:, None]), v[..., None])[..., 0]
        + c[:, None]
    )


class AuthorsTwoLayer(FullBatchGD):
    """The authors' two-layer network for all draws, full-batch GD on sum (f - y)^2 with one
    step size for the first layer (W, b) and one for the output layer (v, c); records the
    relative L1 risk mean|f - y| / mean|y| on the test inputs and the train MSE."""

    def __init__(self, data: dict[str, Tensor], lr_first: float, lr_out: float) -> None:
        super().__init__()
        for key in ("x", "y", "x_test", "y_test"):
            self.register_buffer(key, data[key])
        for key in ("w", "b", "v", "c"):
            self.register_parameter(key, torch.nn.Parameter(data[f"{key}0"].clone(), False))
        self.lr_first, self.lr_out = lr_first, lr_out
        self.register_buffer("scale", self.y_test.abs().mean(1))  # (B,) the zero predictor

    def test_error(self) -> Tensor:
        """Relative L1 risk per draw, (B,)."""
        f = authors_forward(self.x_test, self.w, self.b, self.v, self.c)
        return (f - self.y_test).abs().mean(1) / self.scale

    def train_mse(self) -> Tensor:
        f = authors_forward(self.x, self.w, self.b, self.v, self.c)
        return (f - self.y).square().mean(1)

    @torch.no_grad()
    def gd_step(self) -> None:
        """One step on sum_i (f_i - y_i)^2 (the authors' MSELoss(reduction='sum')), gradients
        in closed form."""
        h = torch.bmm(self.x, self.w.transpose(1, 2)) + self.b[:, None]  # (B, n, k)
        a = h.clamp(min=0)
        r = 2 * (torch.bmm(a, self.v[..., None])[..., 0] + self.c[:, None] - self.y)  # (B, n)
        back = (h > 0) * (r[..., None] * self.v[:, None, :])  # dL/dh, (B, n, k)
        grad_w = torch.bmm(back.transpose(1, 2), self.x)  # (B, k, d)
        grad_v = torch.bmm(a.transpose(1, 2), r[..., None])[..., 0]  # (B, k)
        self.w.sub_(self.lr_first * grad_w)
        self.b.sub_(self.lr_first * back.sum(1))
        self.v.sub_(self.lr_out * grad_v)
        self.c.sub_(self.lr_out * r.sum(1))


def train_authors(
    data: dict[str, Tensor], lr_first: float, lr_out: float, steps: int, n_log: int
) -> list[tuple[int, dict[str, float]]]:
    """Train all draws in the authors' setting; the records at log-spaced steps."""
    return fit_at_log_steps(AuthorsTwoLayer(data, lr_first, lr_out), steps, n_log)

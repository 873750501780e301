"""Sparse logistic regression for :mod:`l1_vs_l2` (Ng, ICML 2004): a fixed set of 10
relevant features among d = 20 .. 2,000 Gaussian inputs, L1 / L2 fits of every seed and
strength as one batched FISTA program (Beck & Teboulle 2009), the test loss in closed form
and the scale-free sparsity statistics.

Per seed: w* = +-1 on the first ``k`` coordinates (random signs), 0 elsewhere; x ~ N(0, I)
with ``max(DIMS)`` columns, and the data at dimension d are the first d columns of the
same sample, so adding features only adds irrelevant ones; labels y ~ Bernoulli(sigmoid(x.w*))
do not depend on d. n = 300 train and 300 validation samples. Penalties on the mean
log-loss: L1 lam ||w||_1 (proximal soft-thresholding), L2 lam ||w||^2 / 2; step 1/L,
L = ||X||_2^2 / (4n) (+ lam for L2); each strength chosen by validation log-loss.

Test loss: the population log-loss of w, exactly (no test sample): with x ~ N(0, I) only
z* = x.w* and z = x.w matter, jointly Gaussian with variances |w*|^2, |w|^2 and covariance
w.w*, so E[sigmoid(z*) softplus(-z) + sigmoid(-z*) softplus(z)] is a 2-D Gaussian integral,
computed on a grid (:func:`population_logloss`). Its minimum over w is at w* (the model is
well specified): the excess over L(w*) is >= 0.
"""

from __future__ import annotations

import math

import torch
from torch.nn.functional import softplus

GAUSS = math.erf(0.01 / math.sqrt(2))  # P(|z| < 0.01) = 0.0080
SETUP = {"k": 10, "n": 300, "n_val": 300}
DIMS = [20, 60, 200, 600, 2000]  # features; the first k relevant, the rest irrelevant
SPARSITY_D = 200  # where the sparsity readings are taken (the earlier d = 200 setup)
LAMS = [float(v) for v in torch.logspace(-4, 0, 13, dtype=torch.float64)]
GRID = torch.linspace(-8.0, 8.0, 801, dtype=torch.float64)  # quadrature nodes, spacing 0.02


def small_frac(w: torch.Tensor) -> torch.Tensor:
    """Fraction of |w| < 0.01 RMS(w) along the last axis."""
    rms = w.square().mean(-1, keepdim=True).sqrt()
    return (w.abs() < 0.01 * rms).double().mean(-1)


def make_data(seeds: list[int], d: int = max(DIMS)) -> dict[str, torch.Tensor]:
    """w* (S, d), x (S, n + n_val, d), y (S, n + n_val) per seed. :func:`fit_all` draws once
    at its largest d and slices, so every d of a sweep sees the same samples."""
    k, n = SETUP["k"], SETUP["n"] + SETUP["n_val"]
    out: dict[str, list] = {"w_star": [], "x": [], "y": []}
    for seed in seeds:
        g = torch.Generator().manual_seed(seed)
        w = torch.zeros(d, dtype=torch.float64)
        w[:k] = torch.randint(0, 2, (k,), generator=g).double() * 2 - 1
        x = torch.randn(n, d, generator=g, dtype=torch.float64)
        y = (torch.rand(n, generator=g, dtype=torch.float64) < torch.sigmoid(x @ w)).double()
        out["w_star"].append(w)
        out["x"].append(x)
        out["y"].append(y)
    return {k_: torch.stack(v) for k_, v in out.items()}


def logloss(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Mean log-loss per (seed, strength): x (S, n, d), y (S, n), w (S, G, d)."""
    z = torch.einsum("snd,sgd->sgn", x, w)
    return torch.nn.functional.binary_cross_entropy_with_logits(
        z, y[:, None].expand_as(z), reduction="none"
    ).mean(-1)


def fista(x: torch.Tensor, y: torch.Tensor, arm: str, steps: int) -> torch.Tensor:
    """Weights (S, G, d) of every seed and strength in LAMS."""
    s, n, d = x.shape
    lam = torch.tensor(LAMS, dtype=x.dtype)[None, :, None]  # (1, G, 1)
    lip = torch.linalg.matrix_norm(x, ord=2) ** 2 / (4 * n)  # (S,)
    lip = lip[:, None, None] + (lam if arm == "l2" else 0.0)
    w = v = torch.zeros(s, len(LAMS), d, dtype=x.dtype)
    t = 1.0
    for _ in range(steps):
        p = torch.sigmoid(torch.einsum("snd,sgd->sgn", x, v))
        grad = torch.einsum("sgn,snd->sgd", p - y[:, None], x) / n
        if arm == "l2":
            grad = grad + lam * v
        w_new = v - grad / lip
        if arm == "l1":  # proximal step of lam ||w||_1
            w_new = torch.sign(w_new) * (w_new.abs() - lam / lip).clamp_min(0)
        t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
        v = w_new + (t - 1) / t_new * (w_new - w)
        w, t = w_new, t_new
    return w


def population_logloss(w: torch.Tensor, w_star: torch.Tensor) -> torch.Tensor:
    """Expected log-loss of w on fresh data, x ~ N(0, I), y ~ Bernoulli(sigmoid(x.w*)):
    w, w_star (S, d) -> (S,). z* = sqrt(a) u, z = (c / sqrt(a)) u + sqrt(b - c^2/a) v with
    u, v independent N(0, 1), a = |w*|^2, b = |w|^2, c = w.w*; trapezoid rule on a
    801 x 801 grid over [-8, 8]^2 (truncation ~1e-15)."""
    a = w_star.square().sum(-1)[:, None, None]  # (S, 1, 1)
    b = w.square().sum(-1)[:, None, None]
    c = (w * w_star).sum(-1)[:, None, None]
    u, v = GRID[None, :, None], GRID[None, None, :]  # (1, U, 1), (1, 1, V)
    z_star = a.sqrt() * u
    z = c / a.sqrt() * u + (b - c.square() / a).clamp_min(0).sqrt() * v  # (S, U, V)
    loss = torch.sigmoid(z_star) * softplus(-z) + torch.sigmoid(-z_star) * softplus(z)
    h = float(GRID[1] - GRID[0])
    phi = torch.exp(-GRID.square() / 2) / math.sqrt(2 * math.pi) * h  # (U,) weights
    return torch.einsum("suv,u,v->s", loss, phi, phi)


def f1(w: torch.Tensor, w_star: torch.Tensor) -> torch.Tensor:
    """F1 of the support {|w| >= 0.01 RMS(w)} against the relevant set, per row."""
    rms = w.square().mean(-1, keepdim=True).sqrt()
    sel, rel = w.abs() >= 0.01 * rms, (w_star != 0).expand_as(w)
    tp = (sel & rel).sum(-1).double()
    return 2 * tp / (sel.sum(-1) + rel.sum(-1)).double()


def fit_all(seeds: list[int], steps: int, dims: list[int]) -> dict[str, list]:
    """Per arm, per seed: the records of one run, ``(step, metrics)``: at step d, the
    strength chosen on validation at dimension d and its excess test log-loss, small-weight
    fraction and support F1; at step g (the strength's index), the small-weight fraction
    and F1 of strength g at d = SPARSITY_D (the figure's curve)."""
    data = make_data(seeds, max(dims))
    n, nv = SETUP["n"], SETUP["n_val"]
    tr, va = slice(0, n), slice(n, n + nv)
    out: dict[str, list] = {arm: [[] for _ in seeds] for arm in ("l1", "l2")}
    for d in dims:
        x, w_star = data["x"][..., :d], data["w_star"][:, :d]
        bayes = population_logloss(w_star, w_star)  # (S,)
        for arm in ("l1", "l2"):
            w = fista(x[:, tr], data["y"][:, tr], arm, steps)  # (S, G, d)
            best = logloss(x[:, va], data["y"][:, va], w).argmin(1)  # (S,)
            chosen = w[torch.arange(len(seeds)), best]  # (S, d)
            excess = population_logloss(chosen, w_star) - bayes
            frac, score = small_frac(w), f1(w, w_star[:, None])  # (S, G)
            for i in range(len(seeds)):
                b = int(best[i])
                rec = {
                    "d/lam": LAMS[b],
                    "d/excess_logloss": float(excess[i]),
                    "d/small_frac": float(frac[i, b]),
                    "d/f1": float(score[i, b]),
                }
                out[arm][i].append((d, rec))
                if d == SPARSITY_D:
                    out[arm][i] += [
                        (g, {"lam/small_frac": float(frac[i, g]), "lam/f1": float(score[i, g])})
                        for g in range(len(LAMS))
                    ]
    return out

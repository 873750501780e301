"""Sparse logistic regression for :mod:`l1_vs_l2` (Ng, ICML 2004): data with 10
relevant of d = 200 Gaussian inputs, L1 / L2 fits of every seed and strength as one batched
FISTA program (Beck & Teboulle 2009), and the scale-free statistics.

Labels y ~ Bernoulli(sigmoid(x.w*)), w* = +-1 on 10 random indices; n = 300 train, 300
validation, 2000 test per seed. Penalties on the mean log-loss: L1 lam ||w||_1 (proximal
soft-thresholding), L2 lam ||w||^2 / 2; step 1/L, L = ||X||_2^2 / (4n) (+ lam for L2).
"""

from __future__ import annotations

import math

import torch

GAUSS = math.erf(0.01 / math.sqrt(2))  # P(|z| < 0.01) = 0.0080
SETUP = {"d": 200, "k": 10, "n": 300, "n_val": 300, "n_test": 2000}
LAMS = [float(v) for v in torch.logspace(-4, 0, 13, dtype=torch.float64)]


def small_frac(w: torch.Tensor) -> torch.Tensor:
    """Fraction of |w| < 0.01 RMS(w) along the last axis."""
    rms = w.square().mean(-1, keepdim=True).sqrt()
    return (w.abs() < 0.01 * rms).double().mean(-1)


def make_data(seeds: list[int]) -> dict[str, torch.Tensor]:
    d, k = SETUP["d"], SETUP["k"]
    sizes = [SETUP["n"], SETUP["n_val"], SETUP["n_test"]]
    out: dict[str, list] = {"w_star": [], "x": [], "y": []}
    for seed in seeds:
        g = torch.Generator().manual_seed(seed)
        w = torch.zeros(d, dtype=torch.float64)
        idx = torch.randperm(d, generator=g)[:k]
        w[idx] = torch.randint(0, 2, (k,), generator=g).double() * 2 - 1
        x = torch.randn(sum(sizes), d, generator=g, dtype=torch.float64)
        y = (
            torch.rand(sum(sizes), generator=g, dtype=torch.float64) < torch.sigmoid(x @ w)
        ).double()
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


def f1(w: torch.Tensor, w_star: torch.Tensor) -> torch.Tensor:
    """F1 of the support {|w| >= 0.01 RMS(w)} against the relevant set, per row."""
    rms = w.square().mean(-1, keepdim=True).sqrt()
    sel, rel = w.abs() >= 0.01 * rms, (w_star != 0).expand_as(w)
    tp = (sel & rel).sum(-1).double()
    return 2 * tp / (sel.sum(-1) + rel.sum(-1)).double()


def fit_all(seeds: list[int], steps: int) -> dict[str, list]:
    """Per arm, per seed: the records (one per strength, then the chosen one)."""
    data = make_data(seeds)
    n, nv = SETUP["n"], SETUP["n_val"]
    x, y, w_star = data["x"], data["y"], data["w_star"]
    tr, va, te = slice(0, n), slice(n, n + nv), slice(n + nv, None)
    out = {}
    for arm in ("l1", "l2"):
        w = fista(x[:, tr], y[:, tr], arm, steps)  # (S, G, d)
        val = logloss(x[:, va], y[:, va], w)
        err = (
            (
                (torch.einsum("snd,sgd->sgn", x[:, te], w) > 0).double()
                != y[:, te, None].transpose(1, 2)
            )
            .double()
            .mean(-1)
        )
        frac, score = small_frac(w), f1(w, w_star[:, None])
        best = val.argmin(1)  # (S,)
        out[arm] = []
        for k in range(len(seeds)):
            recs = [
                (
                    g,
                    {
                        "val/logloss": float(val[k, g]),
                        "test/err": float(err[k, g]),
                        "small_frac": float(frac[k, g]),
                        "f1": float(score[k, g]),
                    },
                )
                for g in range(len(LAMS))
            ]
            b = int(best[k])
            recs.append(
                (
                    len(LAMS),
                    {
                        "chosen/lam": LAMS[b],
                        "chosen/small_frac": float(frac[k, b]),
                        "chosen/f1": float(score[k, b]),
                        "chosen/test_err": float(err[k, b]),
                    },
                )
            )
            out[arm].append(recs)
    return out

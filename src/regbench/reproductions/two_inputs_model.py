"""The two-input problem of :mod:`two_inputs`: its data, gradient descent on each arm,
and the closed forms that GD should reach (the setup and the formulas are described in
that module's docstring and in docs/REPRODUCTIONS.md).

Kept apart from the reproduction (its runs, claims and report) so that each file stays
readable. It registers no reproduction: the package imports every module, and only
``@REPRODUCTIONS.register`` adds one.
"""

from __future__ import annotations

import math

import torch

SETUP = {"rho": 0.7, "lam_l2": 0.1, "q": 0.5, "lam_l1": 0.1, "lr": 0.1, "w0": 0.5}


def make_data(n: int, seeds: list[int]) -> torch.Tensor:
    """(S, n, 2) inputs (A, B) per seed; the target is column 0."""
    xs = []
    for seed in seeds:
        g = torch.Generator().manual_seed(seed)
        a = torch.randn(n, generator=g, dtype=torch.float64)
        other = torch.randn(n, generator=g, dtype=torch.float64)
        same = torch.rand(n, generator=g, dtype=torch.float64) < SETUP["rho"]
        xs.append(torch.stack([a, torch.where(same, a, other)], 1))
    return torch.stack(xs)


def closed_form(x: torch.Tensor, arm: str) -> torch.Tensor:
    """The arm's end point on the sample, (S, 2)."""
    s = x.transpose(1, 2) @ x / x.shape[1]  # (S, 2, 2)
    c = s[:, :, 0]  # X^T y / n with y = A
    if arm == "l1":
        return torch.stack([1 - SETUP["lam_l1"] / s[:, 0, 0], torch.zeros_like(c[:, 0])], 1)
    lam = {"none": 0.0, "l2": SETUP["lam_l2"]}.get(arm)
    diag = torch.full_like(c, lam) if lam is not None else s.diagonal(dim1=1, dim2=2)
    if arm == "dropout":
        diag = diag * SETUP["q"] / (1 - SETUP["q"])
    return torch.linalg.solve(s + torch.diag_embed(diag), c)


def gd(x: torch.Tensor, arm: str, steps: int, seeds: list[int]) -> torch.Tensor:
    """The GD path of every seed, (steps + 1, S, 2); seed k's dropout masks come from its
    own generator, so its run does not depend on which other seeds share the batch."""
    n, lr, q = x.shape[1], SETUP["lr"], SETUP["q"]
    s, y = x.transpose(1, 2) @ x / n, x[:, :, 0]
    w = torch.full((x.shape[0], 2), SETUP["w0"], dtype=x.dtype)
    gens = [torch.Generator().manual_seed(10_000 + seed) for seed in seeds]  # the masks
    path = [w]
    for _ in range(steps):
        if arm == "dropout":
            u = torch.stack([torch.rand(x.shape[1:], generator=g, dtype=x.dtype) for g in gens])
            m = (u >= q) / (1 - q)
            xt = x * m  # (S, n, 2)
            grad = ((xt @ w[..., None])[..., 0] - y)[:, None, :] @ xt / n
            w = w - lr * grad[:, 0]
        else:
            w = w - lr * ((s @ w[..., None])[..., 0] - s[:, :, 0])
            if arm == "l2":
                w = w - lr * SETUP["lam_l2"] * path[-1]
            if arm == "l1":  # proximal step: soft threshold at lr * lam
                t = lr * SETUP["lam_l1"]
                w = torch.sign(w) * (w.abs() - t).clamp_min(0)
        path.append(w)
    return torch.stack(path)


def population(arm: str) -> tuple[float, float]:
    """The arm's end point on the population (S = [[1, rho], [rho, 1]], c = (1, rho)):
    what the sample closed forms approach, quoted in the report's table and figure."""
    rho = SETUP["rho"]
    lam = {"none": 0.0, "l2": SETUP["lam_l2"], "dropout": SETUP["q"] / (1 - SETUP["q"])}
    if arm == "l1":
        return 1 - SETUP["lam_l1"], 0.0
    d = (1 + lam[arm]) ** 2 - rho**2
    return ((1 + lam[arm]) - rho**2) / d, rho * lam[arm] / d


def dropout_delta(n: int, steps: int) -> float:
    """Tolerance of dropout's averaged end point: the full-batch gradient's mask noise has
    sd <= 2/sqrt(n) per coordinate (per-sample terms |x~_j (x~.w - y)| have sd < 2 here),
    averaging T/2 independent steps divides it by sqrt(T/2), and the error is that noise
    times H^-1 with ||H^-1|| <= 1/(1 - rho + 1) (Polyak & Juditsky 1992); 4 such sds."""
    return 4 * (2 / math.sqrt(n)) / math.sqrt(steps / 2) / (2 - SETUP["rho"])

"""L1 vs L2 with irrelevant features (Ng, "Feature selection, L1 vs. L2 regularization, and
rotational invariance", ICML 2004): L1-regularized logistic regression needs a number of
samples that grows with the log of the number of irrelevant features (Theorem 3.1); any
rotationally invariant method, L2-regularized logistic regression among them, needs a
number that grows at least linearly in the worst case (Theorem 4.1). At a fixed sample
size, the same statement reads: as irrelevant features are added, L1's test loss grows
slowly and L2's fast.

Logistic part (:mod:`sparse_logistic`): 10 relevant features (weights +-1) and d in
{20, 60, 200, 600, 2000} features in all, the extra ones irrelevant and added to the same
sample (paired across d); n = 300 train, 300 validation; L1 and L2 fitted by FISTA for 13
strengths log-spaced over 1e-4..1, each chosen on validation log-loss at each d; the test
loss is the population log-loss in closed form, reported as the excess E(d) over the Bayes
loss (the true model's). Statistics, per seed (declared before the run):

- ``ng_l1``: the least-squares slope of ln E_L1 on ln d over the whole sweep, below 0.5:
  L1's loss grows slower than sqrt(d). Growth like log d gives 0.20 over this sweep
  (ln(ln 2000 / ln 20) / ln 100), linear growth 1.
- ``ng_l2``: the same slope for L2 over d <= 200 (below n = 300, before the loss nears its
  ceiling, ln 2 minus the Bayes loss), above 0.5: L2's loss grows faster than sqrt(d); the
  classical excess log-loss of an unpenalized fit is d / (2n), slope 1.
- ``ng_gap``: irrelevant features cost L2 more: [E_L2(2000) - E_L2(20)] - [E_L1(2000) -
  E_L1(20)] > 0, paired per seed.

Secondary, the sparsity readings at d = 200 (the chosen strengths): L1's fraction of
weights with |w| < 0.01 RMS(w) above 10x the Gaussian level P(|z| < 0.01) = 0.80%, L2's
below 3x, L1's support {|w| >= 0.01 RMS(w)} recovering the relevant set (F1 > 0.5).

MLP part (folk claims): the MNIST-1D MLP (conf/experiment/l1_vs_l2.yaml) with
``reg=[l1_prox]`` (proximal L1: soft-thresholding after every SGD step, so weights can be
exactly 0; the subgradient of ``reg=[l1]`` never makes exact zeros) or ``reg=[l2]``, at the
fixed strengths 1e-4, 1e-3 and 1e-2 (no selection); the claims read the first layer
(``diag/small_frac/blocks.0.0``) at 1e-3, the grid value at which the L1 penalty at init,
strength x sum|w| = 1.2, is of the order of the data loss at init (ln 10 = 2.3).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from regbench.report import history, load_runs, mean_ci, table
from regbench.report.claims import Claim, Verdict, judge, paired
from regbench.report.markdown import ci_cell
from regbench.report.plots import COLORS, band, new_figure, save
from regbench.reproductions import REPRODUCTIONS
from regbench.reproductions.base import Report, Reproduction, grid
from regbench.reproductions.direct import finished, parent_run, run_once
from regbench.reproductions.seed_pairs import error_on_test
from regbench.reproductions.sparse_logistic import (
    DIMS,
    GAUSS,
    LAMS,
    SETUP,
    SPARSITY_D,
    fit_all,
)

SCALES = {  # tiny: the same code path, two dimensions and a one-point MLP grid (seconds)
    "tiny": {
        "steps": 300,
        "dims": [20, SPARSITY_D],
        "strengths": [1e-3],
        "mlp": ["trainer.max_epochs=2", "data.n_train=600", "data.n_test=200"],
    },
    # 1,500 FISTA steps: the objective within ~1e-4 of its minimum by FISTA's bound
    # 2 L |w0 - w_hat|^2 / (k + 1)^2 (Beck & Teboulle 2009, Thm 4.4), below the excess losses
    "cpu": {"steps": 1500, "dims": DIMS, "strengths": [1e-4, 1e-3, 1e-2], "mlp": []},
}
L2_MAX_D = 200  # ng_l2's sweep stops below n = 300
CLAIM_STRENGTH = 1e-3  # the MLP claims' strength
MLP_ARMS = {"l1": "l1_prox", "l2": "l2"}
FIRST = "diag/small_frac/blocks.0.0"
NG = "Ng 2004 (ICML)"
MLP_FOLK = (
    "the textbook reading (L1 sparse, L2 diffuse) carried to a network trained by SGD, "
    "here with proximal L1 steps: a popular belief, not Ng's convex result"
)


def claims() -> dict[str, Claim]:
    g = f"Gaussian level P(|z| < 0.01) = {GAUSS:.4f}"
    c = {
        "ng_l1": Claim(
            "ng_l1", "L1's excess test loss grows slower than sqrt(d) as irrelevant features "
            "are added", "per seed: least-squares slope of ln E_L1(d) on ln d, d = 20..2000",
            "below", 0.5, f"{NG} Thm 3.1: samples needed grow with log d (slope 0.20 over "
            "this sweep); 0.5 = sqrt(d), between log (0.2) and linear (1) growth",
            digits=2, curves=("excess test log-loss over d, L1",),
        ),
        "ng_l2": Claim(
            "ng_l2", "L2's excess test loss grows faster than sqrt(d) (d <= 200, below n)",
            "per seed: least-squares slope of ln E_L2(d) on ln d, d = 20..200", "above",
            0.5, f"{NG} Thm 4.1: rotationally invariant methods (L2) need samples linear in "
            "d in the worst case; unpenalized excess log-loss d/(2n): slope 1",
            digits=2, curves=("excess test log-loss over d, L2",),
        ),
        "ng_gap": Claim(
            "ng_gap", "irrelevant features cost L2 more than L1",
            "per seed: [E_L2(d_max) - E_L2(d_min)] - [E_L1(d_max) - E_L1(d_min)], paired; "
            "cpu: d_min = 20, d_max = 2000", "above",
            0.0, f"{NG} Thms 3.1 and 4.1 and sec. 5 (L1 far more tolerant of irrelevant "
            "features)", digits=4, kind="paired",
            curves=("excess test log-loss over d, L1", "excess test log-loss over d, L2"),
        ),
    }  # fmt: skip
    for part, label in (
        ("lr", "logistic regression, d = 200"),
        ("mlp", "MNIST-1D MLP first layer"),
    ):
        role = {"role": "folk", "role_reason": MLP_FOLK} if part == "mlp" else {}
        c[f"{part}_l1"] = Claim(
            f"{part}_l1", f"{label}: L1 weights far above the Gaussian level of small weights",
            "fraction |w| < 0.01 RMS(w), L1", "above", 10 * GAUSS, f"10x the {g}",
            scale=100, digits=2, unit="%", curves=(f"{label}, L1 weights",), **role,
        )  # fmt: skip
        c[f"{part}_l2"] = Claim(
            f"{part}_l2", f"{label}: L2 weights near the Gaussian level",
            "fraction |w| < 0.01 RMS(w), L2", "below", 3 * GAUSS,
            f"3x the {g} (RMS up to ~3x the irrelevant weights' sd)", scale=100, digits=2,
            unit="%", curves=(f"{label}, L2 weights",), **role,
        )  # fmt: skip
    c["lr_f1"] = Claim(
        "lr_f1", "logistic regression, d = 200: L1 recovers the 10 relevant features",
        "F1 of {|w| >= 0.01 RMS} vs the relevant set, L1", "above", 0.5,
        f"{NG}: L1 needs O(log d) samples, n = 300 >> 10 log 200; 0.5: more right than wrong",
        curves=("logistic regression, d = 200, L1 weights",),
    )  # fmt: skip
    return c


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys on xs."""
    return float(np.polyfit(xs, ys, 1)[0])


def log_slope(curve: dict[int, float], max_d: float = math.inf) -> float:
    """Slope of ln E on ln d over the dimensions up to ``max_d``."""
    ds = sorted(d for d in curve if d <= max_d)
    return slope([math.log(d) for d in ds], [math.log(curve[d]) for d in ds])


def logreg_curves(runs: list) -> dict[str, dict[int, dict[str, dict[int, float]]]]:
    """arm -> seed -> metric (excess_logloss, lam, small_frac, f1) -> {d: value}, and
    ``lam_small_frac``: {strength index: small-weight fraction} at d = SPARSITY_D."""
    out: dict = {"l1": {}, "l2": {}}
    for r in runs:
        if r.params.get("part") == "logreg":
            rec = {
                m: dict(history(r.run_id, f"d/{m}"))
                for m in ("excess_logloss", "lam", "small_frac", "f1")
            }
            rec["lam_small_frac"] = dict(history(r.run_id, "lam/small_frac"))
            out[r.p("arm")][r.seed] = rec
    return out


def judge_claims(lr: dict, mlp: dict) -> list[Verdict]:
    """The verdicts, Ng's claims first, then the sparsity readings."""
    c = claims()
    e = {a: {s: v["excess_logloss"] for s, v in lr[a].items()} for a in lr}
    seeds = sorted(set(e["l1"]) & set(e["l2"]))
    lo, hi = min(e["l1"][seeds[0]]), max(e["l1"][seeds[0]])
    growth = {a: [e[a][s][hi] - e[a][s][lo] for s in seeds] for a in e}

    def at_d(arm: str, metric: str) -> list[float]:
        return [lr[arm][s][metric][SPARSITY_D] for s in sorted(lr[arm])]

    return [
        judge(c["ng_l1"], [log_slope(e["l1"][s]) for s in seeds]),
        judge(c["ng_l2"], [log_slope(e["l2"][s], L2_MAX_D) for s in seeds]),
        judge(c["ng_gap"], paired(growth["l2"], growth["l1"])),
        judge(c["lr_l1"], at_d("l1", "small_frac")),
        judge(c["lr_f1"], at_d("l1", "f1")),
        judge(c["lr_l2"], at_d("l2", "small_frac")),
        judge(c["mlp_l1"], [r.metrics[FIRST] for r in mlp["l1"].get(CLAIM_STRENGTH, {}).values()]),
        judge(c["mlp_l2"], [r.metrics[FIRST] for r in mlp["l2"].get(CLAIM_STRENGTH, {}).values()]),
    ]


def mlp_runs(runs: list) -> dict[str, dict[float, dict[int, object]]]:
    """arm -> strength -> seed -> run of the MLP grids (they share the experiment)."""
    out: dict = {"l1": {}, "l2": {}}
    for arm, reg in MLP_ARMS.items():
        key = f"reg.{reg}.strength"
        for r in runs:
            if key in r.params and FIRST in r.metrics:
                out[arm].setdefault(r.p(key, float), {})[r.seed] = r
    return out


def logreg_rows(lr: dict) -> list[list]:
    rows = []
    for d in sorted(next(iter(lr["l1"].values()))["excess_logloss"]):
        row: list[object] = [d]
        for a in ("l1", "l2"):
            vals = lr[a].values()
            row += [
                ci_cell([v["excess_logloss"][d] for v in vals], 4),
                ci_cell([math.log10(v["lam"][d]) for v in vals], 2),
                ci_cell([v["small_frac"][d] for v in vals], 2, 100),
            ]
        rows.append(row)
    return rows


def mlp_rows(mlp: dict) -> list[list]:
    rows = []
    for a, reg in MLP_ARMS.items():
        for strength, by_seed in sorted(mlp[a].items()):
            rs = list(by_seed.values())
            rows.append(
                [
                    f"{reg}, {strength:g}",
                    len(rs),
                    ci_cell([r.metrics[FIRST] for r in rs], 2, 100),
                    ci_cell([error_on_test(r) for r in rs], 2, 100),
                ]
            )
    return rows


@REPRODUCTIONS.register("l1_vs_l2")
class L1VsL2(Reproduction):
    name = "l1_vs_l2"
    title = (
        "Ng 2004: as irrelevant features are added, L1-regularized logistic regression's "
        "test loss grows like log d, L2's roughly linearly; L1 is sparse, L2 diffuse "
        "(logistic regression, d = 20..2000; the MNIST-1D MLP's first layer)."
    )
    default_seeds = {"tiny": 3, "cpu": 5}

    def train(self, scale: str, seeds: list[int], n_jobs: int) -> str | None:
        experiment = self.experiment_name(scale)
        sc = SCALES[scale]
        params = {
            a: [
                {
                    **SETUP,
                    "part": "logreg",
                    "arm": a,
                    "dims": str(sc["dims"]),
                    "lams": len(LAMS),
                    "steps": sc["steps"],
                    "seed": s,
                }  # fmt: skip
                for s in seeds
            ]
            for a in ("l1", "l2")
        }
        with parent_run(experiment, self.name, scale) as pid:
            if not all(finished(experiment, p) for ps in params.values() for p in ps):
                recs = fit_all(seeds, sc["steps"], sc["dims"])
                for arm, ps in params.items():
                    for k, p in enumerate(ps):
                        run_once(experiment, pid, f"logreg-{arm}-s{p['seed']}", p,
                                 lambda r=recs[arm][k]: r, label=self.name)  # fmt: skip
        pid_grid = None
        for reg in MLP_ARMS.values():
            base = ["experiment=l1_vs_l2", f"reg=[{reg}]", *sc["mlp"]]
            axes = {f"reg.{reg}.strength": sc["strengths"]}
            res = grid(f"{experiment}-mlp-{reg}", base, axes, seeds, n_jobs, experiment)
            pid_grid = self.check(res, experiment, scale)
        return pid_grid

    def analyse(self, experiment: str, scale: str, out_dir: Path) -> Report:
        runs = load_runs(experiment)
        lr = logreg_curves(runs)
        for arm in ("l1", "l2"):
            self.require_runs(lr[arm], experiment)
        mlp = mlp_runs(runs)
        md = [
            f"Experiment `{experiment}`: logistic regression with {SETUP['k']} relevant "
            f"features, n = {SETUP['n']} (validation {SETUP['n_val']}), each strength from "
            f"the same {len(LAMS)}-point grid 1e-4..1 chosen on validation log-loss at each "
            "d; E(d) = excess population log-loss over the Bayes loss. Mean ± 95% "
            "t-interval over seeds.",
            table(
                [
                    "d",
                    "E (L1)",
                    "log10 lam (L1)",
                    "% small (L1)",
                    "E (L2)",
                    "log10 lam (L2)",
                    "% small (L2)",
                ],
                logreg_rows(lr),
            ),  # fmt: skip
            f"MNIST-1D MLP 2x128, fixed strengths (claims at {CLAIM_STRENGTH:g}); "
            f"% of first-layer weights with |w| < 0.01 RMS(w) (Gaussian level "
            f"{100 * GAUSS:.2f}%).",
            table(
                ["penalty, strength", "seeds", "% small (first layer)", "test err %"], mlp_rows(mlp)
            ),  # fmt: skip
        ]
        fig = self._figure(lr, out_dir)
        return Report.of(md, fig, "l1 vs l2", judge_claims(lr, mlp))

    @staticmethod
    def _figure(lr, out_dir: Path) -> Path:
        fig, (ax, ax2) = new_figure(2, width=5.0, height=3.8)
        for k, a in enumerate(("l1", "l2")):
            ds = sorted(next(iter(lr[a].values()))["excess_logloss"])
            stats = [mean_ci([v["excess_logloss"][d] for v in lr[a].values()]) for d in ds]
            band(ax, ds, stats, a.upper(), COLORS[k])
            first = lr[a][min(lr[a])]  # the first seed's strength curve at d = SPARSITY_D
            curve = [100 * v for _, v in sorted(first["lam_small_frac"].items())]
            ax2.plot(LAMS[: len(curve)], curve, "o-", ms=3, color=COLORS[k], label=a.upper())
            ax2.axvline(first["lam"][SPARSITY_D], color=COLORS[k], ls=":", lw=1)
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="features d (10 relevant)",
            ylabel="excess test log-loss",
            title=f"Logistic regression, n = {SETUP['n']}",
        )
        ax.legend(fontsize=8)
        ax2.axhline(100 * GAUSS, color="grey", ls="--", lw=0.8, label="Gaussian level")
        ax2.set(
            xscale="log",
            ylim=(0, 100),
            xlabel="strength lam",
            ylabel="% |w| < 0.01 RMS(w)",
            title=f"d = {SPARSITY_D}, first seed (dotted: chosen)",
        )
        ax2.set_yscale("symlog", linthresh=1.0)  # linear below 1%, where the Gaussian level sits
        ax2.legend(fontsize=8)
        return save(fig, out_dir / "l1_vs_l2.png")

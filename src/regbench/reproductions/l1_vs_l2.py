"""L1 is sparse, L2 is diffuse (Ng, ICML 2004, "Feature selection, L1 vs. L2
regularization, and rotational invariance": L1-regularized logistic regression needs
samples logarithmic in the irrelevant features, L2 roughly linear).

Synthetic part (docs/REPRODUCTIONS.md): logistic regression, d = 200 Gaussian
inputs, 10 relevant (weights +-1 on random indices), labels y ~ Bernoulli(sigmoid(x.w*));
n = 300 train, 300 validation, 2000 test per seed. Both penalties on the mean log-loss,
L1 lam ||w||_1 and L2 lam ||w||^2 / 2, fitted by FISTA (Beck & Teboulle 2009; proximal
soft-thresholding for L1) with step 1/L, L = ||X||_2^2 / (4n) (+ lam for L2), every seed
and strength as one batched tensor program; each penalty's strength chosen by
validation log-loss from the same 13-point grid (equal-size grids).

Statistic (scale-free): the fraction of weights with |w| < 0.01 RMS(w); a Gaussian gives
P(|z| < 0.01) = 0.80%. Support: {|w| >= 0.01 RMS(w)}, scored by F1 against the relevant set.
MLP part: the MNIST-1D MLP (conf/experiment/l1_vs_l2.yaml) with reg=[l1] or reg=[l2],
each strength from the same grid (1e-4, 1e-3, 1e-2) chosen on val/acc; the statistic on its first
layer (``diag/small_frac/blocks.0.0``).

Claims: L1's fraction above 10x the Gaussian level ("far above"); L1's support F1 above
0.5 (the selected set is more right than wrong: Ng 2004's log(d) sample complexity is
far below n = 300 here); L2's fraction below 3x the Gaussian level ("near": irrelevant
weights Gaussian-like with RMS(w) up to ~3x their sd).
"""

from __future__ import annotations

import math
from pathlib import Path

from regbench.report import history, load_runs, mean_ci, table
from regbench.report.claims import Claim, Verdict, judge
from regbench.report.plots import COLORS, new_figure, save
from regbench.reproductions import REPRODUCTIONS
from regbench.reproductions.base import Report, Reproduction, grid
from regbench.reproductions.direct import finished, parent_run, run_once
from regbench.reproductions.sparse_logistic import GAUSS, LAMS, SETUP, fit_all

SCALES = {  # tiny: the same code path, a one-point MLP grid (seconds)
    "tiny": {
        "steps": 300,
        "strengths": [1e-3],
        "mlp": ["trainer.max_epochs=2", "data.n_train=600", "data.n_test=200"],
    },
    "cpu": {"steps": 3000, "strengths": [1e-4, 1e-3, 1e-2], "mlp": []},
}
FIRST = "diag/small_frac/blocks.0.0"


def claims() -> dict[str, Claim]:
    g = f"Gaussian level P(|z| < 0.01) = {GAUSS:.4f}"
    c = {}
    for part, label in (("lr", "logistic regression"), ("mlp", "MNIST-1D MLP first layer")):
        c[f"{part}_l1"] = Claim(
            f"{part}_l1",
            f"{label}: L1 weights far above the Gaussian level of small weights",
            "fraction |w| < 0.01 RMS(w), L1",
            "above",
            10 * GAUSS,
            f"10x the {g}",
            scale=100,
            digits=2,
            unit="%",
        )
        c[f"{part}_l2"] = Claim(
            f"{part}_l2",
            f"{label}: L2 weights near the Gaussian level",
            "fraction |w| < 0.01 RMS(w), L2",
            "below",
            3 * GAUSS,
            f"3x the {g} (RMS up to ~3x the irrelevant weights' sd)",
            scale=100,
            digits=2,
            unit="%",
        )
    c["lr_f1"] = Claim(
        "lr_f1",
        "logistic regression: L1 recovers the 10 relevant features",
        "F1 of {|w| >= 0.01 RMS} vs the relevant set, L1",
        "above",
        0.5,
        "Ng 2004: L1 needs O(log d) samples, n = 300 >> 10 log 200; 0.5: more right than wrong",
    )
    return c


COLUMNS = [
    "model, penalty",
    "log10 chosen strength",
    "% |w| < 0.01 RMS",
    "support F1",
    "test error %",
]


def logreg_runs(runs: list) -> dict[str, dict]:
    """Per penalty, seed -> run of the logistic-regression part (the MLP grids share the
    experiment)."""
    return {
        a: {r.seed: r for r in runs if r.params.get("part") == "logreg" and r.p("arm") == a}
        for a in ("l1", "l2")
    }


def judge_claims(lr: dict, mlp: dict) -> list[Verdict]:
    """The verdicts in the order of the report's claims table."""
    c = claims()
    return [
        judge(c["lr_l1"], [r.metrics["chosen/small_frac"] for r in lr["l1"].values()]),
        judge(c["lr_f1"], [r.metrics["chosen/f1"] for r in lr["l1"].values()]),
        judge(c["lr_l2"], [r.metrics["chosen/small_frac"] for r in lr["l2"].values()]),
        judge(c["mlp_l1"], [r.metrics[FIRST] for r in mlp["l1"].values()]),
        judge(c["mlp_l2"], [r.metrics[FIRST] for r in mlp["l2"].values()]),
    ]


def summary_rows(lr: dict, mlp: dict) -> list[list]:
    """Per penalty: the logistic row, then the MLP first layer's row when it has runs."""
    rows = []
    for a in ("l1", "l2"):
        rs = list(lr[a].values())
        rows.append(
            [
                f"logistic, {a}",
                mean_ci([math.log10(r.metrics["chosen/lam"]) for r in rs]).fmt(2),
                mean_ci([r.metrics["chosen/small_frac"] for r in rs]).fmt(2, 100),
                mean_ci([r.metrics["chosen/f1"] for r in rs]).fmt(3),
                mean_ci([r.metrics["chosen/test_err"] for r in rs]).fmt(2, 100),
            ]
        )
        ms = list(mlp[a].values())
        if ms:
            rows.append(
                [
                    f"MLP first layer, {a}",
                    mean_ci([math.log10(r.p(f"reg.{a}.strength", float)) for r in ms]).fmt(2),
                    mean_ci([r.metrics[FIRST] for r in ms]).fmt(2, 100),
                    "-",
                    mean_ci([1 - r.metrics["test/acc"] for r in ms]).fmt(2, 100),
                ]
            )
    return rows


def setup_text(experiment: str, scale: str, steps: str) -> str:
    """The report's first paragraph: both setups, the strength grids, the Gaussian level."""
    return (
        f"Experiment `{experiment}`: logistic regression d = {SETUP['d']}, {SETUP['k']} "
        f"relevant, n = {SETUP['n']} (validation {SETUP['n_val']}, test {SETUP['n_test']}), "
        f"FISTA {steps} steps, strengths from the same {len(LAMS)}-point grid "
        f"1e-4..1 chosen on validation log-loss; MNIST-1D MLP 2x128 with reg=[l1] / "
        f"reg=[l2], strengths {SCALES[scale]['strengths']} chosen on val/acc. Gaussian level "
        f"{100 * GAUSS:.2f}%. Mean ± 95% t-interval over seeds."
    )


@REPRODUCTIONS.register("l1_vs_l2")
class L1VsL2(Reproduction):
    name = "l1_vs_l2"
    title = (
        "L1 sparse vs L2 diffuse (Ng 2004): with strengths chosen on validation, L1 zeroes "
        "most weights and recovers the relevant features; L2 leaves a Gaussian-like spread "
        "(logistic regression, d = 200, and the MNIST-1D MLP's first layer)."
    )
    default_seeds = {"tiny": 3, "cpu": 5}

    def train(self, scale: str, seeds: list[int], n_jobs: int) -> str | None:
        experiment = self.experiment_name(scale)
        steps = SCALES[scale]["steps"]
        params = {
            a: [
                {**SETUP, "part": "logreg", "arm": a, "lams": len(LAMS), "steps": steps, "seed": s}
                for s in seeds
            ]
            for a in ("l1", "l2")
        }
        with parent_run(experiment, self.name, scale) as pid:
            if not all(finished(experiment, p) for ps in params.values() for p in ps):
                recs = fit_all(seeds, steps)
                for arm, ps in params.items():
                    for k, p in enumerate(ps):
                        run_once(
                            experiment,
                            pid,
                            f"logreg-{arm}-s{p['seed']}",
                            p,
                            lambda r=recs[arm][k]: r,
                            label=self.name,
                        )
        for arm in ("l1", "l2"):
            base = ["experiment=l1_vs_l2", f"reg=[{arm}]", *SCALES[scale]["mlp"]]
            res = grid(
                f"{experiment}-mlp-{arm}",
                base,
                {f"reg.{arm}.strength": SCALES[scale]["strengths"]},
                seeds,
                n_jobs,
                experiment,
            )
            pid_grid = self.check(res, experiment, scale)
        return pid_grid

    def analyse(self, experiment: str, scale: str, out_dir: Path) -> Report:
        runs = load_runs(experiment)
        lr = logreg_runs(runs)
        if not lr["l1"]:
            raise SystemExit(
                f"no finished runs in {experiment!r}; run `regbench reproduce {self.name}`"
            )
        mlp = {a: self._mlp_chosen(runs, a) for a in ("l1", "l2")}
        verdicts = judge_claims(lr, mlp)
        rows = summary_rows(lr, mlp)
        steps = list(lr["l2"].values())[0].p("steps")
        md = [setup_text(experiment, scale, steps), table(COLUMNS, rows), self._explain(lr, mlp)]
        fig = self._figure(lr, mlp, out_dir)
        md.append(f"![l1 vs l2]({fig.name})")
        return Report("\n\n".join(md), figures=[fig], claims=verdicts)

    @staticmethod
    def _explain(lr, mlp) -> str:
        """What the chosen strengths imply, from the numbers of this run."""
        kept = SETUP["d"] * (
            1 - mean_ci([r.metrics["chosen/small_frac"] for r in lr["l1"].values()]).mean
        )
        k = SETUP["k"]
        out = (
            f"L1 keeps {kept:.1f} of {SETUP['d']} weights on average at the chosen strength; "
            f"were all {k} relevant ones among them, F1 would be {2 * k / (kept + k):.3f}. "
            "Validation log-loss picks a strength for prediction, and the prediction-optimal "
            "lasso keeps many irrelevant features (Meinshausen & Buehlmann 2006), so support "
            "F1 stays low even where recall may be full."
        )
        if mlp["l1"]:
            s = next(iter(mlp["l1"].values())).p("reg.l1.strength", float)
            out += (
                f" On the MLP, val/acc picks the L1 strength {s:g}; at that strength SGD "
                "leaves the first layer dense."
            )
        return out

    @staticmethod
    def _mlp_chosen(runs, arm: str) -> dict:
        """Per seed, the MLP run of the strength with the best mean val/acc over seeds."""
        key = f"reg.{arm}.strength"
        rs = [r for r in runs if key in r.params and FIRST in r.metrics]
        if not rs:
            return {}
        by = {}
        for r in rs:
            by.setdefault(r.p(key, float), []).append(r)
        best = max(by, key=lambda s: mean_ci([r.metrics["val/acc"] for r in by[s]]).mean)
        return {r.seed: r for r in by[best]}

    @staticmethod
    def _figure(lr, mlp, out_dir: Path) -> Path:
        import numpy as np

        fig, (ax, ax2) = new_figure(2, width=5.0, height=3.8)
        for k, a in enumerate(("l1", "l2")):
            r = lr[a][min(lr[a])]
            ws = [v for _, v in history(r.run_id, "small_frac")]
            ax.plot(
                LAMS[: len(ws)],
                [100 * v for v in ws],
                "o-",
                ms=3,
                color=COLORS[k],
                label=f"{a}: % small",
            )
            ax.axvline(r.metrics["chosen/lam"], color=COLORS[k], ls=":", lw=1)
        ax.axhline(100 * GAUSS, color="grey", ls="--", lw=0.8, label="Gaussian level")
        ax.set(
            xscale="log",
            ylim=(0, 100),
            xlabel="strength lam",
            ylabel="% |w| < 0.01 RMS(w)",
            title="logistic regression, seed 0 (dotted: chosen)",
        )
        ax.legend(fontsize=8)
        labels = ["logreg L1", "logreg L2", "MLP L1", "MLP L2"]
        vals = [
            [r.metrics["chosen/small_frac"] for r in lr["l1"].values()],
            [r.metrics["chosen/small_frac"] for r in lr["l2"].values()],
            [r.metrics[FIRST] for r in mlp["l1"].values()],
            [r.metrics[FIRST] for r in mlp["l2"].values()],
        ]
        for i, v in enumerate(vals):
            if v:
                ax2.scatter([i] * len(v), [100 * x for x in v], color=COLORS[i % 2], s=14)
                ax2.plot([i - 0.25, i + 0.25], [100 * np.mean(v)] * 2, color="k")
        ax2.axhline(100 * GAUSS, color="grey", ls="--", lw=0.8)
        ax2.set(
            xticks=range(4),
            xticklabels=labels,
            ylim=(0, 100),
            ylabel="% |w| < 0.01 RMS(w)",
            title="at the chosen strength: seeds (dots), mean (bar)",
        )
        for a in (ax, ax2):  # linear below 1%, where the Gaussian level sits; log above
            a.set_yscale("symlog", linthresh=1.0)
        return save(fig, out_dir / "l1_vs_l2.png")

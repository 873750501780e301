"""Inverted vs vanilla dropout (Srivastava et al. 2014, JMLR 15(56), sec. 10; the
weight-scaling inference rule).

Vanilla dropout multiplies a unit by a mask m ~ Bernoulli(p) in training and by the
retain probability p at test; inverted dropout (PyTorch's, ``bernoulli`` here) multiplies
by m/p in training and by 1 at test. Rates in configs are drop rates, p = 1 - rate.

Claims:

1. *Exact reparametrization.* With plain SGD, a vanilla net whose weights following a
   dropout layer start at W/p and take steps lr/p^2 computes the same function as the
   inverted net (weights W, steps lr) when both draw the same masks: W(m h / p) =
   (W/p)(m h), the gradient of the vanilla weights is p times the inverted one, so
   W/p - (lr/p^2) p g = (W - lr g)/p stays the image of the inverted weights; the
   backward signal to earlier layers is the same. Checked in float64 on the project's
   MLP, for drop 0.5 (p a power of 2: bit-identical) and drop 0.2 (p = 0.8: rounding
   differs); the statistic is max |delta logit| / max |logit| on the test set, the
   maximum over 20 checkpoints of the run. Tolerance 1e-9: float64 rounding is 1.1e-16
   per operation, so 1e-9 leaves a factor 10^7 for its growth over a few hundred SGD
   steps, while a wrong scaling gives differences of order 1 (the naive arm: same init
   and step, shown next to it).
2. *Same hyperparameters.* Trained with identical settings (lr, init, epochs, seeds), the
   two kinds reach test accuracies equal within +-1 point (an equivalence claim, paired
   per seed; the folk reading that the two are interchangeable). Under the identity
   above, the vanilla net is the inverted one with its following weights scaled by p
   at init and their step scaled by p^2, so nothing guarantees this.
3. *Test-time factor.* A course write-up says to scale vanilla dropout units by 1/p at
   test; the weight-scaling rule says p (the expected training-time mask). Judged on
   test NLL of the vanilla nets (accuracy cannot tell: a positive factor leaves the
   argmax of a bias-free ReLU net unchanged): NLL(1/p) - NLL(p) > 0 per seed.

CPU scale: ``conf/experiment/dropout_scaling.yaml`` (MNIST-1D, MLP 40-256-256-10,
dropout 0.5 after each hidden ReLU, plain SGD lr 0.1 with a cosine schedule, batch 64,
60 epochs), both kinds on 6 seeds; the exact check runs outside Lightning (float64,
300 steps, constant rate) per drop rate and seed, tracked under its own parent run
(``reproductions/direct.py``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from regbench.report import RunRecord, history, load_runs, mean_ci, table
from regbench.report.claims import Claim, judge, paired_by_seed, readings
from regbench.report.markdown import ci_cell
from regbench.report.plots import COLORS, log_labels, new_figure, save
from regbench.reproductions import REPRODUCTIONS
from regbench.reproductions.base import Report, Reproduction
from regbench.reproductions.direct import parent_run, run_once
from regbench.reproductions.dropout_eval import (
    exact_fit,
    load_trained,
    nll_acc,
    vanilla_test_factor,
)
from regbench.reproductions.seed_pairs import by_arm_seed

EXACT_RATES = (0.5, 0.2)
EXACT_TOL = 1e-9
TINY = ["data.n_train=600", "data.n_test=200", "model.width=32", "trainer.max_epochs=2"]
SCALES = {  # scale -> (extra overrides, exact-check steps)
    "tiny": (TINY, 20),
    "cpu": ([], 300),
}
FACTORS = {"p": lambda p: p, "1": lambda p: 1.0, "1/p": lambda p: 1.0 / p}
KINDS = ["bernoulli", "vanilla"]  # the grid's model.dropout_kind: inverted, vanilla

CLAIMS = {
    "exact": Claim(
        "exact",
        "vanilla dropout with following weights W/p and steps lr/p^2 = inverted dropout "
        "(plain SGD, shared masks)",
        "max abs(delta logit) / max abs(logit) on test, 20 checkpoints, float64",
        "below",
        EXACT_TOL,
        "identity W(mh/p) = (W/p)(mh) and its gradients; float64 rounding 1e-16/op, "
        "1e-9 leaves 10^7 for growth over the run",
        exact=True,
        scale=1e9,
        digits=4,
        unit=" x 1e-9",
        role="check",
        role_reason="an identity (a reparametrization): it can fail only if the code is wrong",
    ),
    "same_hp": Claim(
        "same_hp",
        "same hyperparameters: vanilla and inverted dropout reach the same test accuracy",
        "paired test acc, vanilla - inverted",
        "within",
        0.0,
        "+-1 point: the practical margin the folk equivalence is read with, this project's, "
        "fixed in commit 30e3b9b (docs/REPRODUCTIONS.md section 6)",
        delta=0.01,
        scale=100,
        digits=2,
        unit=" pt",
        kind="paired",
        role="folk",
        role_reason="the popular reading that inverted and vanilla dropout are "
        "interchangeable; under the identity above they differ at init and in step size",
    ),
    "factor": Claim(
        "factor",
        "vanilla dropout: test factor p beats the write-up's 1/p on test NLL",
        "paired test NLL, factor 1/p - factor p",
        "above",
        0.0,
        "weight-scaling rule (Srivastava et al. 2014 sec. 10): E[m] = p",
        digits=3,
        kind="paired",
    ),
}


@REPRODUCTIONS.register("dropout_scaling")
class DropoutScaling(Reproduction):
    name = "dropout_scaling"
    title = (
        "Inverted vs vanilla dropout (Srivastava et al. 2014 sec. 10): the exact "
        "reparametrization, equal hyperparameters, and the test-time factor p vs 1/p."
    )
    default_seeds = {"tiny": 2, "cpu": 6}

    axes = {"model.dropout_kind": KINDS}
    tiny = TINY

    def train(self, scale: str, seeds: list[int], n_jobs: int) -> str | None:
        """The exact checks (direct runs), then the grid of both dropout kinds."""
        extra, steps = SCALES[scale]
        experiment = self.experiment_name(scale)
        with parent_run(experiment, f"{self.name}-exact", scale) as pid:
            for rate in EXACT_RATES:
                for seed in seeds[:3]:
                    params = {"check": "exact", "rate": rate, "seed": seed, "steps": steps}
                    params["overrides"] = " ".join(extra)
                    run_once(
                        experiment,
                        pid,
                        f"exact-drop{rate}-s{seed}",
                        params,
                        lambda r=rate, s=seed: exact_fit(r, s, steps, extra),
                        label=self.name,
                    )
        return super().train(scale, seeds, n_jobs)

    def analyse(self, experiment: str, scale: str, out_dir: Path) -> Report:
        runs = load_runs(experiment, key=lambda r: (r.params.get("check"), *_key(r)))
        exact = [r for r in runs if r.params.get("check") == "exact"]
        trained = [r for r in runs if "model.dropout_kind" in r.params]
        self.require_runs(exact, experiment)
        self.require_runs(trained, experiment)
        kind = lambda r: r.params["model.dropout_kind"]  # noqa: E731
        acc = by_arm_seed(trained, kind, lambda r: r.metrics["test/acc"], KINDS)
        factors = {
            r.seed: _factor_eval(r) for r in trained if r.params["model.dropout_kind"] == "vanilla"
        }
        nll_gap = [factors[s]["1/p"][0] - factors[s]["p"][0] for s in sorted(factors)]
        verdicts = [
            judge(CLAIMS["exact"], [r.metrics["exact/matched_rel_dlogit"] for r in exact]),
            judge(CLAIMS["same_hp"], paired_by_seed(acc["vanilla"], acc["bernoulli"])),
            judge(CLAIMS["factor"], nll_gap),
        ]
        md = [self._tables(exact, acc, factors), *readings(verdicts, READINGS)]
        fig = self._figure(exact, factors, out_dir)
        return Report.of(md, fig, "dropout scaling", verdicts)

    @staticmethod
    def _tables(exact: list[RunRecord], acc: dict, factors: dict) -> str:
        rows = [
            [
                r.params["rate"],
                r.seed,
                f"{r.metrics['exact/matched_rel_dlogit']:.1e}",
                f"{r.metrics['exact/naive_rel_dlogit']:.2f}",
            ]
            for r in sorted(exact, key=lambda r: (r.params["rate"], r.seed))
        ]
        ex = table(["drop rate", "seed", "matched (W/p, lr/p^2)", "naive (W, lr)"], rows)
        acc_rows = [[k, len(v), ci_cell(v, 2, 100)] for k, v in acc.items() if v]
        f_rows = [
            [name, ci_cell([f[name][0] for f in factors.values()], 3),
             ci_cell([f[name][1] for f in factors.values()], 2, 100)]
            for name in FACTORS
        ]  # fmt: skip
        return "\n\n".join(
            [
                "Exact check, max |delta logit| / max |logit| on the test set over 20 checkpoints "
                "(float64): the vanilla net with W/p and lr/p^2 against the inverted net, "
                "and a naive vanilla net with the same init and step:",
                ex,
                "Test accuracy (%) with the same hyperparameters, mean [95% CI] over seeds:",
                table(["dropout kind", "seeds", "test acc %"], acc_rows),
                "Vanilla nets at test, each dropout layer's input times a factor (p is the "
                "weight-scaling rule):",
                table(["factor", "test NLL", "test acc %"], f_rows),
            ]
        )

    @staticmethod
    def _figure(exact: list[RunRecord], factors: dict, out_dir: Path) -> Path:
        from matplotlib.ticker import MaxNLocator

        fig, (ax0, ax1) = new_figure(2, width=5.0, height=3.8)
        for r in exact:
            color = COLORS[EXACT_RATES.index(float(r.params["rate"]))]
            for key, ls in (("matched", "-"), ("naive", "--")):
                h = history(r.run_id, f"exact/{key}_rel_dlogit")
                ys = [max(v, 1e-18) for _, v in h]  # bit-identical -> 0, drawn at the floor
                ax0.plot([s for s, _ in h], ys, ls=ls, color=color, lw=1)
        for i, rate in enumerate(EXACT_RATES):
            ax0.plot([], [], color=COLORS[i], label=f"drop {rate}")
        ax0.plot([], [], "k-", label="W/p, lr/p^2 (matched)")
        ax0.plot([], [], "k--", label="W, lr (naive)")
        ax0.axhline(EXACT_TOL, color="gray", ls=":", label="tolerance")
        ax0.text(
            0.02, 0.02, "bit-identical (0) drawn at 1e-18", transform=ax0.transAxes, fontsize=7
        )
        ax0.set(yscale="log", xlabel="SGD step", ylabel="max |dlogit| / max |logit|")
        ax0.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax0.set_title("vanilla vs inverted, shared masks", fontsize=9)
        ax0.legend(fontsize=7)
        names = list(FACTORS)
        for j, f in enumerate(factors.values()):
            label = "one seed each" if j == 0 else None
            ax1.plot(names, [f[n][0] for n in names], "o-", color="gray", alpha=0.5, ms=3,
                     label=label)  # fmt: skip
        ax1.plot(
            names,
            [mean_ci([f[n][0] for f in factors.values()]).mean for n in names],
            "o-",
            color=COLORS[0],
            lw=2,
            label="mean over seeds",
        )
        ax1.set(yscale="log", xlabel="test-time factor on vanilla dropout", ylabel="test NLL")
        log_labels(ax1)
        ax1.set_title("vanilla dropout nets: test-time factor", fontsize=9)
        ax1.legend(fontsize=7)
        return save(fig, out_dir / "dropout_scaling.png")


# One or two plain sentences per refuted folk claim (written from the identity, not a run).
SAME_HP_REFUTED = (
    "Why equal hyperparameters are not enough: by the identity of claim 1, a vanilla net "
    "is an inverted net whose weights after each dropout layer start p times smaller and "
    "learn with a step p^2 times smaller, so with the same learning rate and epochs those "
    "layers train 1/p^2 times slower (4x at drop 0.5) and the vanilla net lags."
)
FACTOR_SUPPORTED = (
    "Why 1/p is wrong for vanilla dropout: in training a unit contributes p times its "
    "value on average (the mask's mean is p); at test, 1/p makes that 1/p^2 times too "
    "large, which inflates every logit and, with biases, changes predicted classes too."
)


READINGS = {("same_hp", "REFUTED"): SAME_HP_REFUTED, ("factor", "SUPPORTED"): FACTOR_SUPPORTED}


def _key(r: RunRecord) -> tuple:
    return (r.params.get("rate"), r.params.get("model.dropout_kind"), r.seed)


def _factor_eval(run: RunRecord) -> dict[str, tuple[float, float]]:
    """Test NLL and accuracy of a vanilla net at each test-time factor."""
    _, model, splits = load_trained(run.run_id)
    out = {}
    for name, f in FACTORS.items():
        with vanilla_test_factor(model, f), torch.no_grad():
            out[name] = nll_acc(model(splits.x_test), splits.y_test)
    return out

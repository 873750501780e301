"""BatchNorm allows higher learning rates (Ioffe & Szegedy 2015, arXiv 1502.03167;
Santurkar et al. 2018, arXiv 1805.11604).

Published: with BN, Inception reaches its baseline accuracy in 14x fewer steps and trains
at 5x and 30x the baseline rate (Ioffe & Szegedy, section 4.2: BN-x5 reaches Inception's
best accuracy, 72.2%, after 2.1M steps, Inception after 31.0M); their MNIST test (section
4.1) is a 3 x 100 sigmoid MLP, batch 60.

CPU scale (conf/experiment/bn_learning_rate.yaml): MNIST-1D, 3 x [Linear-(BN)-Sigmoid]
width 100, plain SGD at a constant rate, batch 60 (60 steps an epoch on the 3,600 train
samples), 20 epochs; arms ``model.norm`` none | batch over the rates 0.01 * 3^k,
k = 0..8 (0.01 .. 65.6), the same 6 seeds in both arms. Then, at each arm's best rate
(highest mean final validation accuracy over the seeds), the same runs again with
``trainer.val_every_n_steps=10``: validation accuracy on the whole 400-sample validation
split every 10 optimizer steps (121 points a run; these runs go one by one).

Claims (declared before the run):

- ``max_lr``: per seed, log3 of (largest rate that trains with BN / largest without),
  where "trains" means the final epoch's train loss is below half the initial loss of a
  chance-level 10-class classifier, ln(10) / 2. On a x3 grid a value above 0.5 means at
  least one grid step, i.e. >= 3x. A rate at which a run diverged (non-finite loss; the
  run ends FAILED and the grid point's later seeds do not run) counts as not trained.
  With BN training at the top of the grid the ratio is a lower bound. A grid index: a
  position claim (sign test, at least 6 seeds).
- ``speed``: Ioffe & Szegedy's measure, steps to the *baseline's* accuracy. Per seed,
  A* = the no-BN arm's best validation accuracy (the maximum of its 10-step curve), and
  log2(steps the no-BN arm takes to first reach A* / steps the BN arm takes to first
  reach A*), each arm at its best rate; above 0 means BN gets there in fewer steps. A BN
  run that never reaches A* counts as reaching it one cadence after its last step (a
  bound that favours the no-BN arm). Paired per seed, t-test on the log ratio (10-step
  resolution against hundreds of steps: not a coarse grid reading).

Tiny scale: 600 train samples, 2 rates, 2 epochs, 2 seeds: the same code path, too few
seeds to judge (INCONCLUSIVE by construction).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from regbench.report import RunRecord, history, load_runs, table
from regbench.report.claims import Claim, judge
from regbench.report.markdown import ci_cell
from regbench.report.plots import COLORS, arm_bands, log_labels, log_ticks, new_figure, save, style
from regbench.reproductions import REPRODUCTIONS
from regbench.reproductions.base import Report, Reproduction
from regbench.reproductions.divergence import grid_allowing_divergence
from regbench.reproductions.seed_pairs import best_by_mean, by_arm_seed

RATES = [round(0.01 * 3**k, 4) for k in range(9)]  # 0.01 .. 65.61, x3 apart
TINY_RATES = [0.09, 2.43]
TINY = ["data.n_train=600", "data.n_test=200", "trainer.max_epochs=2"]
ARMS = ["none", "batch"]
TRAINED = math.log(10) / 2  # half the loss of a chance-level 10-class prediction
EVERY = 10  # optimizer steps between validations of the speed runs
EVERY_KEY = "trainer.val_every_n_steps"
CURVE = "val_step/acc"

CLAIMS = {
    "max_lr": Claim(
        key="max_lr",
        text="the largest rate that trains is >= 3x higher with BN",
        statistic="log3(max trained rate BN / without BN), per seed",
        direction="above",
        threshold=0.5,
        rationale="Ioffe & Szegedy 2015 sec. 4.2: BN trains at 5x and 30x the rate; "
        "> 0.5 on a x3 grid = at least one step",
        kind="position",
    ),
    "speed": Claim(
        key="speed",
        text="at each arm's best rate, BN reaches the no-BN arm's best validation accuracy "
        "in fewer steps",
        statistic="log2(steps without BN to its best val acc A* / steps with BN to A*), per "
        f"seed; val acc every {EVERY} steps",
        direction="above",
        threshold=0.0,
        rationale="Ioffe & Szegedy 2015 sec. 4.2: BN-x5 reaches Inception's best accuracy "
        "(72.2%) in 14x fewer steps (2.1M vs 31.0M); 0 = fewer steps",
        digits=2,
        kind="paired",
        curves=("val acc every 10 steps at each arm's best rate",),
    ),
}


def _rate(lr: float, rates: list[float]) -> str:
    return f"{lr:g}" if lr >= rates[0] else "none in the grid"


def best_rates(by: dict, rates: list[float], seeds: list[int]) -> dict[str, float]:
    """Per arm, the grid rate with the highest mean final validation accuracy over seeds."""
    best = {}
    for a in ARMS:
        accs = {
            lr: [by[(a, lr, s)].metrics["val/acc"] for s in seeds if (a, lr, s) in by]
            for lr in rates
        }
        best[a] = best_by_mean(accs, [lr for lr in rates if accs[lr]], lowest=False)
    return best


def first_step(curve: list[tuple[int, float]], level: float) -> int | None:
    """The first step at which ``curve`` ((step, accuracy) in step order) reaches ``level``."""
    return next((step for step, acc in curve if acc >= level), None)


def speed(none: list[tuple[int, float]], batch: list[tuple[int, float]]) -> float | None:
    """log2(steps without BN to its best accuracy A* / steps with BN to A*) of one seed's
    two curves; a BN curve that never reaches A* counts as reaching it one cadence after its
    last point (a bound in the no-BN arm's favour). None when A* is the untrained net's."""
    target = max(acc for _, acc in none)
    n_none = first_step(none, target)
    if not n_none:  # reached at step 0: no training needed, no ratio
        return None
    n_bn = first_step(batch, target)
    if n_bn is None:
        n_bn = batch[-1][0] + EVERY
    return math.log2(n_none / max(n_bn, 1))


@REPRODUCTIONS.register("bn_learning_rate")
class BnLearningRate(Reproduction):
    name = "bn_learning_rate"
    title = (
        "Ioffe & Szegedy 2015 (arXiv 1502.03167): BatchNorm trains at >= 3x higher "
        "learning rates and reaches the baseline's best accuracy in fewer steps."
    )
    default_seeds = {"tiny": 2, "cpu": 6}

    axes = {"model.norm": ARMS, "optim.lr": {"cpu": RATES, "tiny": TINY_RATES}}
    tiny = TINY

    def train(self, scale: str, seeds: list[int], n_jobs: int) -> str | None:
        """The rate grid (a diverged run is a result here: did not train), then each arm's
        best rate again with validation every EVERY steps."""
        base, axes = self.grid(scale)
        experiment = self.experiment_name(scale)
        parent = self._grid(experiment, experiment, base, axes, seeds, n_jobs, scale)
        by = self._by(experiment, speed_runs=False)
        best = best_rates(by, sorted({k[1] for k in by}), sorted({k[2] for k in by}))
        for a in ARMS:  # the arms' best rates differ: one grid each
            name = f"{experiment}-speed-{a}"
            axes = {"model.norm": [a], "optim.lr": [best[a]]}
            self._grid(
                name, experiment, [*base, f"{EVERY_KEY}={EVERY}"], axes, seeds, n_jobs, scale
            )
        return parent

    def _grid(self, name, experiment, base, axes, seeds, n_jobs, scale) -> str | None:
        return grid_allowing_divergence(
            self, name, experiment, base, axes, seeds, n_jobs, scale, "not trained"
        )

    @staticmethod
    def _by(experiment: str, speed_runs: bool) -> dict[tuple[str, float, int], RunRecord]:
        """(norm, lr, seed) -> run, of the rate grid or of the speed runs."""
        runs = load_runs(
            experiment,
            key=lambda r: (
                r.p("model.norm"), r.p("optim.lr", float), r.seed, r.p(EVERY_KEY, int, 0)
            ),
        )  # fmt: skip
        return {
            (r.p("model.norm"), r.p("optim.lr", float), r.seed): r
            for r in runs
            if (r.p(EVERY_KEY, int, 0) > 0) == speed_runs
        }

    def analyse(self, experiment: str, scale: str, out_dir: Path) -> Report:
        by = self._by(experiment, speed_runs=False)
        self.require_runs(list(by.values()), experiment)
        fast = self._by(experiment, speed_runs=True)
        rates = sorted({k[1] for k in by})
        seeds = sorted({k[2] for k in by})
        max_lr = {a: {} for a in ARMS}  # arm -> seed -> largest trained rate
        for a in ARMS:
            for s in seeds:
                ok = [lr for lr in rates if (r := by.get((a, lr, s))) and self._trained(r)]
                max_lr[a][s] = max(ok) if ok else rates[0] / 3  # below the grid
        log_ratio = {s: math.log(max_lr["batch"][s] / max_lr["none"][s], 3) for s in seeds}
        best = best_rates(by, rates, seeds)
        curves = {  # arm -> seed -> [(step, val acc)] of the speed run at the best rate
            a: {s: history(r.run_id, CURVE) for s in seeds if (r := fast.get((a, best[a], s)))}
            for a in ARMS
        }
        ratio = {
            s: v
            for s in sorted(set(curves["none"]) & set(curves["batch"]))
            if curves["none"][s] and curves["batch"][s]
            if (v := speed(curves["none"][s], curves["batch"][s])) is not None
        }
        speed_verdict = judge(CLAIMS["speed"], [ratio[s] for s in sorted(ratio)])
        if missing := [s for s in seeds if s not in ratio]:
            why = (
                f"no value for seeds {missing}: a speed run missing (diverged or not run), or "
                "the no-BN arm's best accuracy already at step 0 (it did not learn)"
            )
            speed_verdict = replace(
                speed_verdict, note="; ".join(filter(None, [speed_verdict.note, why]))
            )
        verdicts = [judge(CLAIMS["max_lr"], [log_ratio[s] for s in seeds]), speed_verdict]
        md = [self._table(experiment, by, rates, seeds, max_lr, best, curves, ratio)]
        for a in ARMS:
            if any(v < rates[0] for v in max_lr[a].values()):
                md.append(
                    f"norm={a} trains at no rate of the grid for some seeds; its largest "
                    f"trained rate is taken one x3 step below the grid ({rates[0] / 3:g}), so "
                    "the log3 ratio is a bound, not a measurement."
                )
        fig = self._figure(by, rates, best, curves, out_dir)
        return Report.of(md, fig, "BN and the learning rate", verdicts)

    @staticmethod
    def _trained(r: RunRecord) -> bool:
        loss = r.metrics.get("train/loss", math.inf)
        return math.isfinite(loss) and loss < TRAINED

    def _table(self, experiment, by, rates, seeds, max_lr, best, curves, ratio) -> str:
        rows = []
        for lr in rates:
            row = [f"{lr:g}"]
            for a in ARMS:
                rs = [by[(a, lr, s)] for s in seeds if (a, lr, s) in by]
                row += [
                    f"{sum(self._trained(r) for r in rs)}/{len(seeds)}",
                    ci_cell([r.metrics["train/loss"] for r in rs], 3) or "diverged",
                    ci_cell([r.metrics["val/acc"] for r in rs], 1, 100),
                ]
            rows.append(row)
        cols = ("trained", "train loss", "val acc %")
        heads = ["lr"] + [f"{h} ({a})" for a in ARMS for h in cols]
        summary = "; ".join(
            f"{a}: largest trained rate per seed {[_rate(max_lr[a][s], rates) for s in seeds]}, "
            f"best rate {best[a]:g} ({len(curves[a])} runs validated every {EVERY} steps)"
            for a in ARMS
        )
        factor = ", ".join(f"s{s}: {2**v:.2f}x" for s, v in sorted(ratio.items()))
        return (
            f"Experiment `{experiment}`, {len(by)} finished runs of the rate grid, seeds "
            f"{seeds}; a run trains when its final train loss < ln(10)/2 = {TRAINED:.3f}; "
            f"mean ± 95% t-interval over seeds.\n\n{table(heads, rows)}\n\n{summary}. "
            "Steps to the no-BN arm's best validation accuracy, no-BN over BN, per seed "
            f"(Ioffe & Szegedy's Inception: 14x): {factor or 'none'}."
        )

    @staticmethod
    def _figure(by, rates, best, curves, out_dir: Path) -> Path:
        fig, (ax, ax2) = new_figure(2, width=5.0, height=3.8)
        point = lambda r: (r.p("model.norm"), r.p("optim.lr", float))  # noqa: E731
        loss = by_arm_seed(list(by.values()), point, lambda r: r.metrics["train/loss"])
        arm_bands(ax, loss, ARMS, [f"norm={a}" for a in ARMS])
        for i, a in enumerate(ARMS):
            for s, h in curves[a].items():
                if h:
                    ax2.plot(
                        [step for step, _ in h],
                        [100 * v for _, v in h],
                        color=COLORS[i],
                        ls=style(i)["ls"],
                        marker=style(i)["marker"] if len(h) <= 12 else "",
                        ms=3,
                        lw=1,
                        label=f"norm={a}, lr={best[a]:g}" if s == min(curves[a]) else None,
                    )
        ax.axhline(TRAINED, color="gray", ls=":", lw=1, label="ln(10)/2: trained below")
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="learning rate",
            ylabel="final train loss",
            title="Final train loss over the rate grid",
        )
        log_ticks(ax, rates)
        log_labels(ax)
        ax.legend(fontsize=7)
        ax2.set(
            xlabel="SGD steps",
            ylabel="validation accuracy (%)",
            title=f"At each arm's best rate, val every {EVERY} steps (one line per seed)",
        )
        ax2.legend(fontsize=7)
        return save(fig, out_dir / "bn_learning_rate.png")

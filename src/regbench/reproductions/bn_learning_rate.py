"""BatchNorm allows higher learning rates (Ioffe & Szegedy 2015, arXiv 1502.03167;
Santurkar et al. 2018, arXiv 1805.11604).

Published: with BN, Inception reaches its baseline accuracy in 14x fewer steps and trains
at 5x and 30x the baseline rate (Ioffe & Szegedy, section 4.2); their MNIST test (section
4.1) is a 3 x 100 sigmoid MLP, batch 60.

CPU scale (conf/experiment/bn_learning_rate.yaml): MNIST-1D, 3 x [Linear-(BN)-Sigmoid]
width 100, plain SGD at a constant rate, batch 60 (60 steps an epoch on the 3,600 train
samples), 20 epochs; arms ``model.norm`` none | batch over the rates 0.01 * 3^k,
k = 0..8 (0.01 .. 65.6), the same seeds in both arms.

Claims (declared before the run):

- ``max_lr``: per seed, log3 of (largest rate that trains with BN / largest without),
  where "trains" means the final epoch's train loss is below half the initial loss of a
  chance-level 10-class classifier, ln(10) / 2. On a x3 grid a value above 0.5 means at
  least one grid step, i.e. >= 3x. A rate at which a run diverged (non-finite loss; the
  run ends FAILED and the grid point's later seeds do not run) counts as not trained.
  With BN training at the top of the grid the ratio is a lower bound.
- ``speed``: at each arm's best rate (highest mean final validation accuracy over
  seeds), the steps each run takes to first reach 80% of its own best validation
  accuracy; per seed, steps without BN minus steps with BN, above 0. Validation accuracy
  is measured once an epoch, so steps are counted in whole epochs (60 steps): a
  difference smaller than an epoch reads as 0.

Both are discrete readings (a step on the x3 grid, whole epochs), so both are position
claims: each seed is on the claim's side or not, and the count is judged by the sign test
(at least 6 seeds; docs/REPRODUCTIONS.md "How a claim is judged").

Tiny scale: 600 train samples, 2 rates, 2 epochs, 2 seeds: the same code path, too few
seeds to judge (INCONCLUSIVE by construction).
"""

from __future__ import annotations

import math
from pathlib import Path

from regbench.report import RunRecord, history, load_runs, mean_ci, table
from regbench.report.claims import Claim, judge, paired_by_seed
from regbench.report.plots import COLORS, band, new_figure, save
from regbench.reproductions import REPRODUCTIONS
from regbench.reproductions.base import Report, Reproduction
from regbench.reproductions.divergence import train_allowing_divergence

RATES = [round(0.01 * 3**k, 4) for k in range(9)]  # 0.01 .. 65.61, x3 apart
TINY_RATES = [0.09, 2.43]
TINY = ["data.n_train=600", "data.n_test=200", "trainer.max_epochs=2"]
ARMS = ["none", "batch"]
TRAINED = math.log(10) / 2  # half the loss of a chance-level 10-class prediction
TARGET = 0.8  # fraction of a run's best validation accuracy

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
        text="at each arm's best rate, BN reaches 80% of its best val accuracy in fewer steps",
        statistic="steps without BN - steps with BN, per seed",
        direction="above",
        threshold=0.0,
        rationale="Ioffe & Szegedy 2015 sec. 4.2: 14x fewer steps to the baseline accuracy",
        digits=0,
        kind="position",  # steps in whole epochs: a discrete reading, ties are common
    ),
}


def _rate(lr: float, rates: list[float]) -> str:
    return f"{lr:g}" if lr >= rates[0] else "none in the grid"


def steps_per_epoch(r: RunRecord) -> int:
    n = int(r.p("data.n_train", int) * (1 - r.p("data.val_fraction", float)))
    return math.ceil(n / r.p("data.batch_size", int))


def steps_to_target(r: RunRecord) -> int | None:
    """Optimizer steps until val/acc first reaches TARGET x its best (whole epochs)."""
    h = [v for _, v in history(r.run_id, "val/acc")]
    if not h:
        return None
    epoch = next(i for i, v in enumerate(h) if v >= TARGET * max(h))
    return (epoch + 1) * steps_per_epoch(r)


@REPRODUCTIONS.register("bn_learning_rate")
class BnLearningRate(Reproduction):
    name = "bn_learning_rate"
    title = (
        "Ioffe & Szegedy 2015 (arXiv 1502.03167): BatchNorm trains at >= 3x higher "
        "learning rates and reaches a given accuracy in fewer steps."
    )
    default_seeds = {"tiny": 2, "cpu": 3}

    def grid(self, scale: str) -> tuple[list[str], dict[str, list]]:
        base = ["experiment=bn_learning_rate"] + (TINY if scale == "tiny" else [])
        return base, {"model.norm": ARMS, "optim.lr": TINY_RATES if scale == "tiny" else RATES}

    def train(self, scale: str, seeds: list[int], n_jobs: int) -> str | None:
        """As the base class, but a diverged run is a result here (did not train)."""
        return train_allowing_divergence(self, scale, seeds, n_jobs, "not trained")

    def analyse(self, experiment: str, scale: str, out_dir: Path) -> Report:
        runs = load_runs(
            experiment, key=lambda r: (r.p("model.norm"), r.p("optim.lr", float), r.seed)
        )
        self.require_runs(runs, experiment)
        by = {(r.p("model.norm"), r.p("optim.lr", float), r.seed): r for r in runs}
        rates = sorted({k[1] for k in by})
        seeds = sorted({k[2] for k in by})
        max_lr = {a: {} for a in ARMS}  # arm -> seed -> largest trained rate
        for a in ARMS:
            for s in seeds:
                ok = [lr for lr in rates if (r := by.get((a, lr, s))) and self._trained(r)]
                max_lr[a][s] = max(ok) if ok else rates[0] / 3  # below the grid
        log_ratio = {s: math.log(max_lr["batch"][s] / max_lr["none"][s], 3) for s in seeds}
        best, steps = {}, {}
        for a in ARMS:
            accs = {
                lr: [by[(a, lr, s)].metrics["val/acc"] for s in seeds if (a, lr, s) in by]
                for lr in rates
            }
            best[a] = max((lr for lr in rates if accs[lr]), key=lambda lr: mean_ci(accs[lr]).mean)
            steps[a] = {
                s: n
                for s in seeds
                if (r := by.get((a, best[a], s))) and (n := steps_to_target(r)) is not None
            }
        verdicts = [
            judge(CLAIMS["max_lr"], [log_ratio[s] for s in seeds]),
            judge(CLAIMS["speed"], paired_by_seed(steps["none"], steps["batch"])),
        ]
        md = [self._table(experiment, by, rates, seeds, max_lr, best, steps)]
        for a in ARMS:
            if any(v < rates[0] for v in max_lr[a].values()):
                md.append(
                    f"norm={a} trains at no rate of the grid for some seeds; its largest "
                    f"trained rate is taken one x3 step below the grid ({rates[0] / 3:g}), so "
                    "the log3 ratio is a bound, not a measurement."
                )
        fig = self._figure(by, rates, seeds, best, out_dir)
        md.append(f"![BN and the learning rate]({fig.name})")
        return Report("\n\n".join(md), figures=[fig], claims=verdicts)

    @staticmethod
    def _trained(r: RunRecord) -> bool:
        loss = r.metrics.get("train/loss", math.inf)
        return math.isfinite(loss) and loss < TRAINED

    def _table(self, experiment, by, rates, seeds, max_lr, best, steps) -> str:
        rows = []
        for lr in rates:
            row = [f"{lr:g}"]
            for a in ARMS:
                rs = [by[(a, lr, s)] for s in seeds if (a, lr, s) in by]
                loss = mean_ci([r.metrics["train/loss"] for r in rs]) if rs else None
                acc = mean_ci([r.metrics["val/acc"] for r in rs]) if rs else None
                row += [
                    f"{sum(self._trained(r) for r in rs)}/{len(seeds)}",
                    loss.fmt(3) if loss else "diverged",
                    acc.fmt(1, 100) if acc else "",
                ]
            rows.append(row)
        cols = ("trained", "train loss", "val acc %")
        heads = ["lr"] + [f"{h} ({a})" for a in ARMS for h in cols]
        summary = "; ".join(
            f"{a}: largest trained rate per seed {[_rate(max_lr[a][s], rates) for s in seeds]}, "
            f"best rate {best[a]:g}, steps to 80% of best {[steps[a].get(s) for s in seeds]}"
            for a in ARMS
        )
        return (
            f"Experiment `{experiment}`, {len(by)} finished runs, seeds {seeds}; a run "
            f"trains when its final train loss < ln(10)/2 = {TRAINED:.3f}; mean ± 95% "
            f"t-interval over seeds.\n\n{table(heads, rows)}\n\n{summary}."
        )

    @staticmethod
    def _figure(by, rates, seeds, best, out_dir: Path) -> Path:
        fig, (ax, ax2) = new_figure(2, width=5.0, height=3.8)
        for i, a in enumerate(ARMS):
            xs, ss = [], []
            for lr in rates:
                vals = [by[(a, lr, s)].metrics["train/loss"] for s in seeds if (a, lr, s) in by]
                if vals:
                    xs.append(lr)
                    ss.append(mean_ci(vals))
            band(ax, xs, ss, f"norm={a}", COLORS[i])
            for s in seeds:
                if r := by.get((a, best[a], s)):
                    h = history(r.run_id, "val/acc")
                    ax2.plot(
                        [(e + 1) * steps_per_epoch(r) for e, _ in h],
                        [100 * v for _, v in h],
                        color=COLORS[i],
                        lw=1,
                        label=f"norm={a}, lr={best[a]:g}" if s == seeds[0] else None,
                    )
        ax.axhline(TRAINED, color="gray", ls=":", lw=1, label="ln(10)/2: trained below")
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="learning rate",
            ylabel="final train loss",
            title="Final train loss over the rate grid",
        )
        ax.legend(fontsize=7)
        ax2.set(
            xlabel="SGD steps",
            ylabel="validation accuracy (%)",
            title="At each arm's best rate (one line per seed)",
        )
        ax2.legend(fontsize=7)
        return save(fig, out_dir / "bn_learning_rate.png")

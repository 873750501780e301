"""Dropout needs longer training (Srivastava, Hinton, Krizhevsky, Sutskever &
Salakhutdinov 2014, JMLR 15(56), sec. 11): "a dropout network typically takes 2-3 times
longer to train than a standard neural network of the same architecture", because its
parameter updates are noisy.

CPU scale (conf/experiment/dropout_longer_training.yaml): MNIST-1D, MLP 2 x [Linear-
ReLU-Dropout] width 256, SGD momentum 0.9 at a constant rate, batch 100, 100 epochs,
validation error (400 held-out samples) after every epoch. Grid: ``model.dropout`` in
{0, 0.5} x ``optim.lr`` in {0.003, 0.01, 0.03}, 6 seeds shared by every point. Each arm
is read at its own best rate: the rate whose mean (over seeds) best validation error is
lowest, so neither arm is slowed by a rate chosen for the other.

Epochs to the best validation error, per run: T = the first epoch whose validation
error is within one binomial standard error of the run's best, sqrt(e(1 - e)/400) at the
best error e (about 2.3 points at e = 30%). The first epoch at the exact minimum would
pick one of many statistically equal epochs on a flat stretch; the band reads where the
run reaches its best level.

Claims (declared before any run), both paired per seed and judged by t-tests: T counts
whole epochs, but the per-seed difference or ratio of two T's takes many values (it is
no argmin on a grid), so it is a measurement, not a position:

- ``longer``: T(dropout) - T(plain) > 0 epochs (the direction of Srivastava et al.'s
  claim);
- ``factor``: log2(T(dropout) / T(plain)) within [1, log2 3] (Srivastava et al.'s 2-3x;
  on the log scale because a ratio of positive counts is skewed and the mean of ratios
  exceeds the typical ratio).

(Corrected before any cpu-scale run, issue 21's kinds: the first version judged both as
positions, ``longer`` in the window [1, E - 1] epochs, whose upper edge no value can
pass, and ``factor`` as the plain ratio in [2, 3].)

Tiny scale: 600 train samples, width 32, rates {0.01, 0.03}, 3 epochs, 2 seeds.
"""

from __future__ import annotations

import math
from pathlib import Path

from regbench.report import RunRecord, history, table
from regbench.report.claims import Claim, judge
from regbench.report.markdown import ci_cell
from regbench.report.plots import COLORS, curve_band, new_figure, paired_panel, save
from regbench.reproductions import REPRODUCTIONS
from regbench.reproductions.base import Report, Reproduction
from regbench.reproductions.seed_pairs import TINY_DATA, best_by_mean

RATES = {"cpu": [0.003, 0.01, 0.03], "tiny": [0.01, 0.03]}
DROPOUT = [0.0, 0.5]
LABELS = ["plain", "dropout 0.5"]
TINY = [*TINY_DATA, "trainer.max_epochs=3"]
COLUMNS = [
    "arm", "lr", "seeds", "best val err %", "final test err %", "T per seed (sorted)",
    "argmin epoch per seed",
]  # fmt: skip
SRIVASTAVA = "Srivastava et al. 2014 sec. 11: dropout nets take 2-3x longer to train"
T_CURVE = "T per seed at each arm's best rate"  # both claims read it: related


def claims() -> dict[str, Claim]:
    """The two claims, both t-tests of per-seed comparisons of the arms (T counts whole
    epochs, but a difference or ratio of two T's is a measurement with many values, not
    a reading off a grid)."""
    lo, hi = 1.0, math.log2(3)  # log2 of Srivastava et al.'s 2 and 3
    return {
        "longer": Claim(
            key="longer",
            text="dropout takes longer to reach its best validation error",
            statistic="T(dropout) - T(plain) in epochs, each arm at its best rate, paired per seed",
            direction="above",
            threshold=0.0,
            rationale=f"{SRIVASTAVA}; the claim here is its direction (more epochs)",
            min_seeds=6,
            kind="paired",
            curves=(T_CURVE,),
            digits=1,
        ),
        "factor": Claim(
            key="factor",
            text="dropout takes 2-3 times as many epochs (log2 of the ratio in [1, 1.58])",
            statistic="log2(T(dropout) / T(plain)), each arm at its best rate, paired per seed",
            direction="within",
            threshold=(lo + hi) / 2,
            delta=(hi - lo) / 2,
            rationale=f"{SRIVASTAVA}: log2 2 = 1 to log2 3 = 1.58 (a ratio is judged on the "
            "log scale: the mean of ratios overstates the typical factor)",
            min_seeds=6,
            kind="paired",
            curves=(T_CURVE,),
            digits=2,
        ),
    }


def val_errors(r: RunRecord) -> list[float]:
    """Validation error after each epoch (epoch 1 first)."""
    return [1.0 - v for _, v in history(r.run_id, "val/acc")]


def n_val(r: RunRecord) -> int:
    return round(r.p("data.n_train", int) * r.p("data.val_fraction", float))


def epochs_to_best(errors: list[float], n: int) -> int:
    """The first epoch (1-based) within one binomial s.e. of the best validation error."""
    best = min(errors)
    se = math.sqrt(best * (1 - best) / n)
    return next(i for i, e in enumerate(errors, start=1) if e <= best + se)


@REPRODUCTIONS.register("dropout_longer_training")
class DropoutLongerTraining(Reproduction):
    name = "dropout_longer_training"
    title = (
        "Srivastava et al. 2014 (JMLR 15(56), sec. 11): a dropout net takes 2-3 times "
        "longer to reach its best validation error, each arm at its own best rate."
    )
    default_seeds = {"tiny": 2, "cpu": 6}

    axes = {"model.dropout": DROPOUT, "optim.lr": RATES}
    tiny = TINY

    def analyse(self, experiment: str, scale: str, out_dir: Path) -> Report:
        point = lambda r: (r.p("model.dropout", float), r.p("optim.lr", float))  # noqa: E731
        runs = self.finished_runs(experiment, point)
        curves = {(*point(r), r.seed): val_errors(r) for r in runs}
        n = n_val(runs[0])
        rates = sorted({k[1] for k in curves})
        best_err: dict[tuple[float, float], list[float]] = {}  # (dropout, lr) -> per seed
        for k, c in curves.items():
            best_err.setdefault(k[:2], []).append(min(c))
        best_rate = {
            d: best_by_mean(best_err, sorted(k for k in best_err if k[0] == d))[1] for d in DROPOUT
        }
        t = {
            d: {
                s: epochs_to_best(c, n)
                for (dd, lr, s), c in curves.items()
                if (dd, lr) == (d, best_rate[d])
            }
            for d in DROPOUT
        }
        seeds = sorted(set(t[0.0]) & set(t[0.5]))
        c = claims()
        verdicts = [
            judge(c["longer"], [t[0.5][s] - t[0.0][s] for s in seeds]),
            judge(c["factor"], [math.log2(t[0.5][s] / t[0.0][s]) for s in seeds]),
        ]
        test_err = {(*point(r), r.seed): 1 - r.metrics["test/acc"] for r in runs}
        rows = []
        for d, label in zip(DROPOUT, LABELS, strict=True):
            for lr in rates:
                keys = [k for k in curves if k[:2] == (d, lr)]
                if keys:
                    mark = " (best)" if lr == best_rate[d] else ""
                    rows.append([label, f"{lr:g}{mark}", *self._cells(keys, curves, test_err, n)])
        md = [
            f"Experiment `{experiment}`, {len(runs)} runs, {n} validation samples. T: first "
            "epoch within one binomial s.e. of the run's best validation error; argmin: the "
            "epoch of the minimum itself (for comparison, not claimed). Test error after the "
            "last epoch. Mean ± 95% t-interval over seeds.",
            table(COLUMNS, rows),
        ]
        if seeds:
            ratios = [t[0.5][s] / t[0.0][s] for s in seeds]
            md.append(
                f"At each arm's best rate (plain {best_rate[0.0]:g}, dropout "
                f"{best_rate[0.5]:g}): T(dropout) / T(plain) per seed "
                f"{[round(x, 2) for x in ratios]} (Srivastava et al.: 2-3)."
            )
        fig = self._figure(curves, best_rate, t, n, out_dir)
        return Report.of(md, fig, "epochs to the best validation error", verdicts)

    @staticmethod
    def _cells(keys, curves, test_err, n) -> list:
        """Seeds, best val error, final test error, T and argmin epoch per seed."""
        ts = sorted(epochs_to_best(curves[k], n) for k in keys)
        argmin = sorted(min(range(len(curves[k])), key=curves[k].__getitem__) + 1 for k in keys)
        return [
            len(keys),
            ci_cell([min(curves[k]) for k in keys], 1, 100),
            ci_cell([test_err[k] for k in keys], 1, 100),
            str(ts),
            str(argmin),
        ]

    @staticmethod
    def _figure(curves, best_rate, t, n, out_dir: Path) -> Path:
        fig, (ax, ax2) = new_figure(2, width=5.0, height=3.8)
        for i, (d, label) in enumerate(zip(DROPOUT, LABELS, strict=True)):
            cs = [c for (dd, lr, _), c in curves.items() if dd == d and lr == best_rate[d]]
            if not cs:
                continue
            length = min(len(c) for c in cs)
            epochs = list(range(1, length + 1))
            name = f"{label}, lr {best_rate[d]:g}"
            curve_band(ax, epochs, [c[:length] for c in cs], name, COLORS[i], scale=100, marker="")
            for te in t[d].values():
                ax.axvline(te, color=COLORS[i], lw=0.6, alpha=0.5)
        title = "Best rate per arm; lines: T per seed"
        ax.set(xlabel="epoch", ylabel="validation error (%)", title=title)
        ax.legend(fontsize=7)
        paired_panel(ax2, t, DROPOUT, LABELS, scale=1.0)
        ax2.set(ylabel="T (epochs)", title=f"Epochs to the best val. error ({n} samples)")
        return save(fig, out_dir / "dropout_longer_training.png")

"""Large nets do best with early stopping (Caruana, Lawrence & Giles, "Overfitting in
Neural Nets: Backpropagation, Conjugate Gradient, and Early Stopping", NIPS 2001;
Weigend 1993).

Published: with early stopping on a validation set, nets with far more hidden units than
needed generalize as well as or better than small ones; trained for a long fixed time,
large nets fit the noise.

CPU scale (conf/experiment/early_stopping_width.yaml, esw_arm/*.yaml): MNIST-1D, one
hidden ReLU layer of width 4, 16, 64, 256, 1024, 15% of the train labels replaced by
another class (validation and test labels clean), SGD lr 0.01 momentum 0.9, batch 100;
arms: a fixed budget of 500 epochs vs early stopping on the validation *error* (as
Caruana et al.: ``val/acc``, mode max; patience 100 epochs, the best epoch's weights
restored), the same 5 seeds in both.

Claims (declared before the run; per seed):

- ``widest``: the early-stopped test error of the widest net minus that of the width a
  practitioner would keep, the one with the best early-stopped *validation* accuracy
  (``diag/best_value``; ties go to the narrower width), is below 1 point. The width is
  chosen on validation and judged on test, so the difference can take either sign: the
  claim can fail. Caruana et al. state it qualitatively (this project found no numeric
  margin in the paper to take); the 1-point tolerance is this project's, fixed in commit
  378fa96.
- ``no_rise``: the least-squares slope of the early-stopped test error on log4(width)
  over the wider half of the grid (64, 256, 1024) is below 0.5 points per x4 step, i.e.
  less than 1 point over the two steps, the same tolerance as ``widest``.
- ``es_helps``: at the widest net, the fixed-budget error minus the early-stopped error
  is above 0 (500 epochs on 15% noisy labels memorize them: Zhang et al. 2017,
  arXiv 1611.03530; Arpit et al. 2017, arXiv 1706.05394).

Tiny scale: 400 train samples, widths 64 and 256, 3 epochs, 2 seeds: the same code path,
too few seeds to judge (INCONCLUSIVE by construction).
"""

from __future__ import annotations

import math
from pathlib import Path

from regbench.report import table
from regbench.report.claims import Claim, judge
from regbench.report.groups import Arms
from regbench.report.markdown import ci_cell
from regbench.report.plots import arm_bands, log_ticks, new_figure, save
from regbench.reproductions import REPRODUCTIONS
from regbench.reproductions.base import Report, Reproduction
from regbench.reproductions.seed_pairs import PTS, by_arm_seed, error_on_test, slope

WIDTHS = {"cpu": [4, 16, 64, 256, 1024], "tiny": [64, 256]}
ARMS = ["fixed", "early"]
ARM_KEY = "+experiment/esw_arm"
TINY = ["data.n_train=400", "data.n_test=200", "trainer.max_epochs=3"]
ES = "early-stopped test error over width"

CLAIMS = {
    "widest": Claim(
        key="widest",
        text="early-stopped: the widest net is within 1 point of the width chosen on validation",
        statistic="err_ES(widest) - err_ES(width with the best ES validation accuracy), "
        "per seed (test error; the width chosen on validation)",
        direction="below",
        threshold=0.01,
        rationale="Caruana et al. 2001: large nets with early stopping generalize as well "
        "as the best size, a qualitative statement (no numeric margin found to take); the "
        "1-point tolerance is this "
        "project's, fixed in commit 378fa96 (docs/REPRODUCTIONS.md section 15; one binomial "
        "s.e. of a 30% error on 1,000 test samples is 1.45 points)",
        curves=(ES,),
        **PTS,
    ),
    "no_rise": Claim(
        key="no_rise",
        text="early-stopped error does not rise with width (wider half of the grid)",
        statistic="LS slope of err_ES on log4(width), widths >= 64, per seed",
        direction="below",
        threshold=0.005,
        rationale="Caruana et al. 2001; 0.5 pts per x4 = 1 point over 64..1024, the "
        "tolerance of the claim above",
        curves=(ES,),
        **PTS,
    ),
    "es_helps": Claim(
        key="es_helps",
        text="at the widest net, early stopping beats the fixed 500-epoch budget",
        statistic="err_fixed(widest) - err_ES(widest), per seed",
        direction="above",
        threshold=0.0,
        rationale="long training memorizes noisy labels (Zhang et al. 2017, "
        "arXiv 1611.03530); Caruana et al. 2001",
        kind="paired",
        curves=(ES,),
        **PTS,
    ),
}


def chosen_width(val: dict[int, dict[int, float]], widths: list[int], seed: int) -> int:
    """The width with the best early-stopped validation accuracy for ``seed``; ties go to
    the narrower width (the smaller model a practitioner would keep)."""
    return max(widths, key=lambda w: (val[w][seed], -w))


@REPRODUCTIONS.register("early_stopping_width")
class EarlyStoppingWidth(Reproduction):
    name = "early_stopping_width"
    title = (
        "Caruana et al. NIPS 2001: stopped on validation error, the widest net does as well "
        "as the width chosen on validation; with label noise, a fixed long budget does worse."
    )
    default_seeds = {"tiny": 2, "cpu": 5}
    arms = Arms("esw_arm", {"fixed": "fixed budget", "early": "early stopping"}, baseline="fixed")
    objective = "test/acc"

    axes = {ARM_KEY: ARMS, "model.width": WIDTHS}
    tiny = TINY

    def analyse(self, experiment: str, scale: str, out_dir: Path) -> Report:
        point = lambda r: (r.p("esw_arm"), r.p("model.width", int))  # noqa: E731
        runs = self.finished_runs(experiment, point)
        err = by_arm_seed(runs, point, error_on_test)
        val: dict[int, dict[int, float]] = {}  # width -> seed -> best ES validation acc
        stop: dict[int, list[float]] = {}
        for r in runs:
            w = r.p("model.width", int)
            if "diag/best_epoch" in r.metrics:
                stop.setdefault(w, []).append(r.metrics["diag/best_epoch"] + 1)
                val.setdefault(w, {})[r.seed] = r.metrics["diag/best_value"]
        widths = sorted({w for _, w in err})
        wide = [w for w in widths if w >= 64] or widths[-1:]
        es = {w: err.get(("early", w), {}) for w in widths}
        seeds = sorted(
            set.intersection(*(set(v) for v in es.values()), *(set(v) for v in val.values()))
        )
        top = widths[-1]
        widest = [es[top][s] - es[chosen_width(val, widths, s)][s] for s in seeds]
        no_rise = [
            slope([math.log(w, 4) for w in wide], [es[w][s] for w in wide])
            for s in seeds
            if len(wide) > 1
        ]
        fixed = err.get(("fixed", top), {})
        helps = [fixed[s] - es[top][s] for s in seeds if s in fixed]
        verdicts = [
            judge(CLAIMS["widest"], widest),
            judge(CLAIMS["no_rise"], no_rise),
            judge(CLAIMS["es_helps"], helps),
        ]
        rows = []
        for w in widths:
            row = [w]
            for a in ARMS:
                row.append(ci_cell(err.get((a, w), {}), 2, 100))
            row.append(f"{sum(stop[w]) / len(stop[w]):.0f}" if stop.get(w) else "")
            rows.append(row)
        md = [
            f"Experiment `{experiment}`, {len(runs)} runs; mean ± 95% t-interval over "
            "seeds; test labels are clean, train labels 15% noisy.",
            table(["width", "test err % (fixed)", "test err % (early)", "best epoch (ES)"], rows),
        ]
        fig = self._figure(err, widths, out_dir)
        return Report.of(md, fig, "early stopping over width", verdicts)

    @staticmethod
    def _figure(err, widths: list[int], out_dir: Path) -> Path:
        fig, (ax,) = new_figure(1, width=5.5, height=3.8)
        # the budget is the scale's trainer.max_epochs (500 at cpu scale, 3 at tiny)
        labels = ["fixed epoch budget", "early stopping (val error)"]
        arm_bands(ax, err, ARMS, labels, scale=100, dodge=True)  # equal errors stay visible
        log_ticks(ax, widths)
        ax.set(
            xlabel="hidden width",
            ylabel="test error (%)",
            title="One hidden layer, 15% label noise (MNIST-1D)",
        )
        ax.legend(fontsize=8)
        return save(fig, out_dir / "early_stopping_width.png")

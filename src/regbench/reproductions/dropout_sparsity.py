"""Dropout learns sparse representations, as a side effect (Srivastava, Hinton,
Krizhevsky, Sutskever & Salakhutdinov 2014, JMLR 15(56), sec. 7.2, fig. 8).

Published (an autoencoder with 256 ReLU hidden units on MNIST, dropout p = 0.5, their
fig. 8): the mean activation of the hidden units is close to 2.0 without dropout and
around 0.7 with it (approx., read from the figure's histograms), and with dropout the
histogram of activations has a sharp peak at zero while without it most mass is away
from zero.

CPU scale (conf/experiment/dropout_sparsity.yaml): MNIST-1D, a classifier with one
hidden layer [Linear-ReLU-Dropout] of 256 units (their width), SGD momentum 0.9, lr 0.05
cosine over 60 epochs, batch 100; arms ``model.dropout`` = 0 and 0.5 on the same 6 seeds.
The activation probe (regbench.probes.activations) reads the hidden layer's outputs on
the 1,000 test inputs in eval mode (the ReLU output, before the dropout layer, which is
the identity at test time; with inverted dropout these equal the activations of
Srivastava et al.'s weight-scaled test net, since only the next layer's weights differ).

Claims (declared before any run; paired per seed):

- ``mean_act``: log(mean activation with dropout / without) < 0 (their 2.0 -> 0.7 is a
  log ratio of -1.05; the claim is its direction). The mean is not scale free: a ReLU net
  can move a factor between a layer and the next one's weights, which is why the second
  claim is the one that speaks to sparsity.
- ``near_zero``: the fraction of activations that are near zero (|a| <= 0.01 x the
  layer's RMS activation, scale free; for ReLU mostly exact zeros) is higher with dropout
  (their "sharp peak at zero").

Departs from the paper: a classifier, not an autoencoder (the claim is about dropout's
effect on hidden units, which their sec. 7.2 states generally); MNIST-1D's 40 inputs.
Tiny scale: 600 train samples, width 32, 3 epochs, 5 seeds (the claims' minimum: both
effects are strong already there, tests/test_atlas_textbook.py).
"""

from __future__ import annotations

import math
from pathlib import Path

from regbench.report import mean_ci, table
from regbench.report.claims import Claim, judge, paired_by_seed
from regbench.report.markdown import ci_cell, num_cell
from regbench.report.plots import new_figure, paired_panel, save
from regbench.reproductions import REPRODUCTIONS
from regbench.reproductions.base import Report, Reproduction
from regbench.reproductions.seed_pairs import TINY_DATA, by_arm_seed, pair_seeds

RATES = [0.0, 0.5]
LABELS = ["plain", "dropout 0.5"]
TINY = [*TINY_DATA, "trainer.max_epochs=3"]
SRIVASTAVA = {0.0: 2.0, 0.5: 0.7}  # mean activation, fig. 8 (approx.), MNIST autoencoder
LAYER = 1  # the hidden layer
STATS = {
    "act_mean": "mean activation",
    "act_near_zero": "near zero %",
    "act_rms": "RMS activation",
    "act_dead": "dead units %",
}
#: both claims: paired per seed, read off the same nets' activations (related)
PAIRED = {"min_seeds": 5, "kind": "paired", "curves": ("hidden activations of the same nets",)}

CLAIMS = {
    "mean_act": Claim(
        key="mean_act",
        text="dropout lowers the hidden units' mean activation",
        statistic="log(mean act. with dropout / without), test set, paired per seed",
        direction="below",
        threshold=0.0,
        rationale="Srivastava et al. 2014 sec. 7.2, fig. 8: about 2.0 -> 0.7 (approx.; "
        "log ratio -1.05); the claim is its direction",
        **PAIRED,
    ),
    "near_zero": Claim(
        key="near_zero",
        text="with dropout more activations are near zero (sparser)",
        statistic="fraction abs(a) <= 0.01 RMS(a), dropout - plain, paired per seed",
        direction="above",
        threshold=0.0,
        rationale="Srivastava et al. 2014 sec. 7.2, fig. 8: a sharp peak at zero with "
        "dropout, most mass away from zero without",
        **PAIRED,
        scale=100,
        digits=1,
        unit=" pts",
    ),
}


def stat(name: str):
    return lambda r: r.metrics[f"diag/{name}/{LAYER}"]


@REPRODUCTIONS.register("dropout_sparsity")
class DropoutSparsity(Reproduction):
    name = "dropout_sparsity"
    title = (
        "Srivastava et al. 2014 (JMLR 15(56), sec. 7.2): dropout makes hidden activations "
        "sparse: a lower mean activation and more units near zero."
    )
    default_seeds = {"tiny": 5, "cpu": 6}  # tiny: the claims' 5 (strong effects there)

    axes = {"model.dropout": RATES}
    tiny = TINY

    def analyse(self, experiment: str, scale: str, out_dir: Path) -> Report:
        arm = lambda r: r.p("model.dropout", float)  # noqa: E731
        runs = self.finished_runs(experiment, arm)
        vals = {k: by_arm_seed(runs, arm, stat(k)) for k in STATS}
        plain, drop = vals["act_mean"].get(0.0, {}), vals["act_mean"].get(0.5, {})
        log_ratio = pair_seeds(drop, plain, lambda d, p: math.log(d / p))
        nz = vals["act_near_zero"]
        verdicts = [
            judge(CLAIMS["mean_act"], list(log_ratio.values())),
            judge(CLAIMS["near_zero"], paired_by_seed(nz.get(0.5, {}), nz.get(0.0, {}))),
        ]
        rows = []
        for rate, label in zip(RATES, LABELS, strict=True):
            cells = [vals[k].get(rate, {}) for k in STATS]
            if not cells[0]:
                continue
            shown = [
                ci_cell(c, 3) if k in ("act_mean", "act_rms") else ci_cell(c, 1, 100)
                for k, c in zip(STATS, cells, strict=True)
            ]
            rows.append([label, len(cells[0]), *shown, num_cell(SRIVASTAVA[rate], 1)])
        md = [
            f"Experiment `{experiment}`, {len(runs)} runs; hidden-layer activations on the "
            "test set, eval mode; mean ± 95% t-interval over seeds. The published column is "
            "Srivastava et al.'s MNIST autoencoder (fig. 8, approx.): the direction, not a "
            "target value.",
            table(["arm", "seeds", *STATS.values(), "published mean act. (MNIST AE)"], rows),
        ]
        if log_ratio:
            ratio = mean_ci([math.exp(v) for v in log_ratio.values()])
            md.append(
                f"Mean activation with dropout / without, per seed: {ratio.fmt(3)} "
                f"(Srivastava et al.: about {SRIVASTAVA[0.5] / SRIVASTAVA[0.0]:.2f})."
            )
        fig = self._figure(vals, out_dir)
        return Report.of(md, fig, "activations with and without dropout", verdicts)

    @staticmethod
    def _figure(vals: dict, out_dir: Path) -> Path:
        fig, (ax, ax2) = new_figure(2, width=4.4, height=3.8)
        paired_panel(ax, vals["act_mean"], RATES, LABELS, scale=1.0)
        ax.set(ylabel="mean activation (test set)", title="Mean hidden activation")
        paired_panel(ax2, vals["act_near_zero"], RATES, LABELS)
        ax2.set(ylabel="activations near zero (%)", title="|a| <= 0.01 RMS(a)")
        return save(fig, out_dir / "dropout_sparsity.png")

"""Model-wise double descent in a small CNN: the MNIST-1D authors' notebook
(greydanus/mnist1d, notebooks/deep-double-descent.ipynb, commit 9129ceb; Greydanus &
Kobak 2020, arXiv 2011.14439; the phenomenon: Nakkiran et al. 2019, arXiv 1912.02292).

Published (one seed, 15% of the train labels redrawn from all 10 classes, 500 epochs,
channels c = 2, 4, .., 28, 30, 35, .., 100): test error 19.64% at c = 10, then 33.80% at
c = 18, then 27-30% up to c = 100; noisy-label train error >= 15% up to c = 14 (17.98%),
0 from c = 24.

Paper scale (conf/experiment/cnn_double_descent_paper.yaml, model cnn1d): the notebook's
setting: MNIST-1D (4,000 train / 12,000 test, generator seed 42), label noise 0.15
redrawn from all 10 classes (``label_noise_mode=resample``), its CNN (three Conv1d layers,
stride 2, c channels), SGD lr 0.01 momentum 0.9, batch 100, 500 epochs, its 29 channel
counts, 6 seeds. CPU scale (conf/experiment/cnn_double_descent.yaml): the same with 300
epochs and the notebook's widths up to 60 (14 of them); fewer epochs interpolate the noisy
labels only at larger c, so no claim names a channel count: each is keyed to the run's
own interpolation transition.

Claims, per seed, declared before any run (the rule of model_double_descent's
``threshold`` claim): the transition is [c_u, c*], c* the narrowest width whose noisy
train error is <= 1% and c_u the widest narrower width whose train error is >= 15% (about
the 13.5% of wrong labels); the peak is the width with the largest rise of test error over
the running minimum before it.

- ``threshold`` (position): the peak lies in the transition, its position on log c
  between c_u (0) and c* (1) within 0.5 +- 0.5 (notebook: c = 18 in [14, 24], 0.47).
- ``rise``: the largest test error in the transition minus the smallest at widths below
  c_u is above half the notebook's (on the scale's grid: 33.80 - 19.64 = 14.2 points).
- ``descent``: the largest test error in the transition minus the error at the grid's
  widest width is above half the notebook's (cpu: 33.80 - 30.04 at c = 60; paper: 33.80 -
  27.66 at c = 100).

A seed without a transition (no width interpolates, or none underfits) has no value, and
the claim's note says so. Tiny scale: 400 train samples, c in {10, 18, 60}, 2 epochs, 2
seeds: the same code path, too few seeds to judge (INCONCLUSIVE by construction).
"""

from __future__ import annotations

from pathlib import Path

from regbench.report import table
from regbench.report.claims import Claim, Verdict
from regbench.report.markdown import ci_cell, num_cell
from regbench.report.plots import COLORS, clip_to, log_ticks, new_figure, save, seed_band
from regbench.reproductions import REPRODUCTIONS
from regbench.reproductions.base import Report, Reproduction
from regbench.reproductions.model_double_descent import (
    peak_stats,
    transition,
    transition_position,
)
from regbench.reproductions.seed_pairs import (
    PTS,
    by_arm_seed,
    error_on_test,
    judge_defined,
    seed_curves,
)

PAPER_CHANNELS = [*range(2, 30, 2), *range(30, 101, 5)]  # the notebook's 29
CHANNELS = [4, 6, 8, 10, 12, 14, 16, 18, 20, 24, 28, 35, 45, 60]  # cpu: its widths to 60
TINY_CHANNELS = [10, 18, 60]
TINY = ["data.n_train=400", "data.n_test=400", "trainer.max_epochs=2"]
GRIDS = {"tiny": TINY_CHANNELS, "cpu": CHANNELS, "paper": PAPER_CHANNELS}
SOURCE = "MNIST-1D notebook deep-double-descent.ipynb, greydanus/mnist1d commit 9129ceb"
# the notebook's test and noisy-label train error (%), 15% noise, 500 epochs, one seed
# fmt: off
PUBLISHED = {
    2: 61.20, 4: 35.78, 6: 23.87, 8: 21.95, 10: 19.64, 12: 23.70, 14: 27.74, 16: 27.29,
    18: 33.80, 20: 32.48, 22: 31.34, 24: 32.03, 26: 29.98, 28: 32.46, 30: 29.82, 35: 30.17,
    40: 30.48, 45: 30.23, 50: 28.67, 55: 28.17, 60: 30.04, 65: 28.11, 70: 28.83, 75: 29.44,
    80: 28.07, 85: 28.12, 90: 28.84, 95: 27.38, 100: 27.66,
}
PUBLISHED_TRAIN = {2: 63.90, 4: 40.40, 6: 29.15, 8: 24.90, 10: 19.55, 12: 19.82, 14: 17.98,
                   16: 12.70, 18: 10.88, 20: 6.15, 22: 5.50}
PUBLISHED_TRAIN |= dict.fromkeys(PAPER_CHANNELS[11:], 0.0)  # 0.00% from c = 24
# fmt: on
TEST, TRAIN = "test error, 15% noise", "train error (noisy labels)"


def curve_stats(widths: list[int], test: list[float], train: list[float]) -> dict[str, float]:
    """The claims' statistics of one seed's curve: ``threshold`` (the peak's position in the
    transition), ``rise`` and ``descent``; a statistic is absent when undefined."""
    ends = transition(widths, train)
    if ends is None:
        return {}
    lo, hi = ends
    inside = [e for w, e in zip(widths, test, strict=True) if lo <= w <= hi]
    before = [e for w, e in zip(widths, test, strict=True) if w < lo]
    out: dict[str, float] = {}
    ps = peak_stats(widths, test)
    if ps["height"] > 0:
        out["threshold"] = transition_position(widths, train, widths[ps["peak"]])
    if before:
        out["rise"] = max(inside) - min(before)
    if hi < widths[-1]:
        out["descent"] = max(inside) - test[-1]
    return out


def published_stats(grid: list[int]) -> dict[str, float]:
    """The statistics of the notebook's own curve on ``grid``'s widths (the thresholds are
    half of them)."""
    ws = [c for c in grid if c in PUBLISHED]
    return curve_stats(ws, [PUBLISHED[c] / 100 for c in ws], [PUBLISHED_TRAIN[c] / 100 for c in ws])


def claims(scale: str) -> dict[str, Claim]:
    """The claims, with rise and descent thresholds at half the notebook's values on the
    scale's grid."""
    pub = published_stats(GRIDS["paper" if scale == "paper" else "cpu"])
    top = GRIDS["paper" if scale == "paper" else "cpu"][-1]
    pts = {**PTS, "curves": (TEST, TRAIN)}
    return {
        "threshold": Claim(
            "threshold", "15% noise: the test-error peak lies in the interpolation transition",
            "per seed: the peak's position on log c between the widest c with noisy train "
            "error >= 15% (0) and the narrowest with <= 1% (1)", "within", 0.5, delta=0.5,
            rationale=f"notebook: peak at c=18, train error 17.98% at c=14 and 0 from c=24: "
            f"position {pub['threshold']:.2f} ({SOURCE}); the rule is model_double_descent's",
            digits=2, kind="position", curves=(TEST, TRAIN),
        ),
        "rise": Claim(
            "rise", "15% noise: test error rises into the transition",
            "per seed: max test error over the transition - min over narrower widths",
            "above", round(pub["rise"] / 2, 4),
            rationale=f"half the notebook's rise on this grid, {100 * pub['rise']:.2f} "
            f"points (33.80 at c=18 - 19.64 at c=10; {SOURCE})", **pts,
        ),
        "descent": Claim(
            "descent", "15% noise: and falls again by the widest net",
            f"per seed: max test error over the transition - test error at c={top}",
            "above", round(pub["descent"] / 2, 4),
            rationale=f"half the notebook's fall from its peak to c={top}, "
            f"{100 * pub['descent']:.2f} points ({SOURCE})", **pts,
        ),
    }  # fmt: skip


def verdicts(curves: dict[int, tuple], scale: str) -> list[Verdict]:
    """Judge every claim on ``curves[seed] = (widths, test, train)``; a seed whose
    statistic is undefined leaves the claim short of seeds, and the note says so."""
    stats = {s: curve_stats(*c) for s, c in curves.items()}
    return [
        judge_defined(claim, {s: st[key] for s, st in stats.items() if key in st}, len(stats))
        for key, claim in claims(scale).items()
    ]


@REPRODUCTIONS.register("cnn_double_descent")
class CnnDoubleDescent(Reproduction):
    name = "cnn_double_descent"
    title = (
        "MNIST-1D authors' notebook (Greydanus & Kobak 2020): with 15% label noise, a "
        "small CNN's test error peaks where it starts to interpolate the noisy labels, "
        "then falls."
    )
    default_seeds = {"tiny": 2, "cpu": 6, "paper": 6}
    objective = "test/acc"  # no val split: all 4,000 train samples are used

    axes = {"model.width": GRIDS}
    tiny = TINY

    def analyse(self, experiment: str, scale: str, out_dir: Path) -> Report:
        width = lambda r: r.p("model.width", int)  # noqa: E731
        runs = self.finished_runs(experiment, width)
        test = by_arm_seed(runs, width, error_on_test)
        train = by_arm_seed(runs, width, lambda r: 1 - r.metrics["diag/train_acc_evalmode"])
        cs = sorted(test)
        curves = seed_curves(test, train)
        ends = {s: transition(cs, tr) for s, (_, _, tr) in curves.items()}
        rows = [
            [c, len(test[c]), ci_cell(test[c], 2, 100), ci_cell(train[c], 2, 100),
             num_cell(PUBLISHED.get(c)), num_cell(PUBLISHED_TRAIN.get(c))]
            for c in cs
        ]  # fmt: skip
        md = [
            f"Experiment `{experiment}`, {len(runs)} runs; mean ± 95% t-interval over seeds. "
            "Train error is on the noisy train labels (eval mode, after training); the "
            "published columns are the notebook's single 500-epoch run.",
            table(
                [
                    "channels",
                    "seeds",
                    "test err %",
                    "train err % (noisy)",
                    "published test %",
                    "published train %",
                ],
                rows,
            ),  # fmt: skip
            "Interpolation transition per seed (widest c with train error >= 15%, narrowest "
            "with <= 1%): " + ", ".join(f"s{s}: {e or 'none'}" for s, e in ends.items()) + ".",
        ]
        fig = self._figure(cs, test, train, out_dir)
        return Report.of(md, fig, "CNN double descent", verdicts(curves, scale))

    @staticmethod
    def _figure(cs, test, train, out_dir: Path) -> Path:
        fig, (ax,) = new_figure(1, width=6.0, height=4.0)
        seed_band(ax, test, "test (here)", COLORS[0], scale=100)
        seed_band(ax, train, "train, noisy labels", COLORS[1], scale=100)
        pub = [c for c in cs if c in PUBLISHED]
        ax.plot(pub, [PUBLISHED[c] for c in pub], color="k", ls=":", marker="x", lw=1,
                label="notebook test (500 ep.)")  # fmt: skip
        ax.set(
            xlabel="channels c",
            ylabel="error (%)",
            title="CNN double descent, 15% label noise (MNIST-1D)",
        )
        log_ticks(ax, cs)
        clip_to(ax, 0, 100)
        ax.legend(fontsize=7)
        return save(fig, out_dir / "cnn_double_descent.png")

"""Augmentation reduces overfitting when data is scarce, and its gain shrinks as the
training set grows (Goodfellow, Bengio & Courville 2016, Deep Learning, sec. 7.4
"Dataset augmentation"; Simard, Steinkraus & Platt, ICDAR 2003: distortions lower a
2-layer MLP's MNIST error from 1.6% to 0.7%).

The textbook statement: augmentation creates plausible new training points, so it
narrows the gap between training and test accuracy and lowers test error; the less data
there is, the more it helps. The second half is the folk reading put to the test here.

CPU scale (conf/experiment/augmentation_overfitting.yaml, aug_n/*.yaml, aug_arm/*.yaml):
MNIST-1D train pools of 500, 1,000, 2,000 and 4,000 samples (10% held out for validation,
the same 1,000 test samples), MLP 2 x [Linear-ReLU] width 256, SGD momentum 0.9, lr 0.05
cosine, batch 100, 2,160 optimizer steps at every size (432 epochs at 500 ... 60 at
4,000: the sizes differ in data, not in training length); arms no augmentation and
``reg=[augment1d]`` (circular shift up to 4, amplitude x U(0.9, 1.1), noise 0.05); the same
5 seeds everywhere. The generalization gap is ``diag/gen_gap``: train accuracy (eval
mode, unaugmented training set) minus test accuracy.

Claims (declared before any run; paired per seed; gain = err(none) - err(augment)):

- ``gap_small``: at 500 samples augmentation narrows the gap: gap(none) - gap(augment)
  > 0 (Goodfellow et al. sec. 7.4);
- ``err_small``: at 500 samples it lowers test error: gain > 0 (Simard et al. 2003);
- ``shrinks``: the gain shrinks as data grows: the least-squares slope of the gain on
  log2(train pool size) over the four sizes is < 0 (the folk reading; its direction).

Tiny scale: pools of 500 and 1,000, width 32, 3 epochs, 2 seeds.
"""

from __future__ import annotations

import math
from pathlib import Path

from regbench.report import mean_ci, table
from regbench.report.claims import Claim, judge, paired_by_seed
from regbench.report.markdown import ci_cell
from regbench.report.plots import arm_bands, log_ticks, new_figure, save
from regbench.reproductions import REPRODUCTIONS
from regbench.reproductions.base import Report, Reproduction
from regbench.reproductions.seed_pairs import PTS, by_arm_seed, error_on_test, slope

SIZES = {"cpu": [500, 1000, 2000, 4000], "tiny": [500, 1000]}
ARMS = ["none", "augment"]
LABELS = {"none": "no augmentation", "augment": "augment1d"}
TINY = ["data.n_test=200", "model.width=32", "trainer.max_epochs=3"]
PAIRED = {**PTS, "min_seeds": 5, "kind": "paired"}
SMALL = "runs at the smallest pool"  # every claim reads them (the slope too): related

CLAIMS = {
    "gap_small": Claim(
        key="gap_small",
        text="with 500 samples, augmentation narrows the generalization gap",
        statistic="gap(none) - gap(augment), gap = train acc - test acc, n = 500, paired",
        direction="above",
        threshold=0.0,
        rationale="Goodfellow, Bengio & Courville 2016, Deep Learning, sec. 7.4",
        curves=(SMALL,),
        **PAIRED,
    ),
    "err_small": Claim(
        key="err_small",
        text="with 500 samples, augmentation lowers test error",
        statistic="err(none) - err(augment), n = 500, paired per seed",
        direction="above",
        threshold=0.0,
        rationale="Simard, Steinkraus & Platt, ICDAR 2003: 2-layer MLP on MNIST 1.6% -> 0.7% "
        "with distortions",
        curves=(SMALL,),
        **PAIRED,
    ),
    "shrinks": Claim(
        key="shrinks",
        text="the gain of augmentation shrinks as the training set grows",
        statistic="slope of gain = err(none) - err(augment) on log2(train pool), per seed",
        direction="below",
        threshold=0.0,
        rationale="folk reading of Goodfellow et al. sec. 7.4: augmentation matters most "
        "when data is scarce; its direction",
        role="folk",
        role_reason="'augmentation matters most when data is scarce', as course notes "
        "repeat it; the cited sources do not measure the gain against the data size",
        curves=(SMALL,),
        kind="paired",
        min_seeds=5,
        scale=100,
        digits=2,
        unit=" pts per doubling",
    ),
}


@REPRODUCTIONS.register("augmentation_overfitting")
class AugmentationOverfitting(Reproduction):
    name = "augmentation_overfitting"
    title = (
        "Goodfellow et al. 2016 sec. 7.4, Simard et al. 2003: augmentation narrows the "
        "generalization gap and lowers test error with scarce data; the gain shrinks as "
        "the training set grows (folk)."
    )
    default_seeds = {"tiny": 2, "cpu": 5}

    axes = {
        "+experiment/aug_n": {k: [f"n{n}" for n in ns] for k, ns in SIZES.items()},
        "+experiment/aug_arm": ARMS,
    }
    tiny = TINY

    def analyse(self, experiment: str, scale: str, out_dir: Path) -> Report:
        point = lambda r: (r.p("aug_arm"), r.p("data.n_train", int))  # noqa: E731
        runs = self.finished_runs(experiment, point)
        err = by_arm_seed(runs, point, error_on_test)
        gap = by_arm_seed(runs, point, lambda r: r.metrics["diag/gen_gap"])
        sizes = sorted({n for _, n in err})
        seeds = sorted({s for v in err.values() for s in v})

        def arm(d: dict, a: str, n: int) -> dict[int, float]:
            return d.get((a, n), {})

        small = sizes[0]
        gain = {n: paired_by_seed(arm(err, "none", n), arm(err, "augment", n)) for n in sizes}
        complete = [s for s in seeds if all(s in arm(err, a, n) for a in ARMS for n in sizes)]
        x = [math.log2(n) for n in sizes]
        slopes = [
            slope(x, [err["none", n][s] - err["augment", n][s] for n in sizes]) for s in complete
        ]
        narrowing = paired_by_seed(arm(gap, "none", small), arm(gap, "augment", small))
        verdicts = [
            judge(CLAIMS["gap_small"], narrowing),
            judge(CLAIMS["err_small"], gain[small]),
            judge(CLAIMS["shrinks"], slopes),
        ]
        rows = []
        for n in sizes:
            for a in ARMS:
                e, g = arm(err, a, n), arm(gap, a, n)
                if e:
                    cells = [ci_cell(v, 2, 100) for v in (e, g)]
                    rows.append([n, LABELS[a], len(e), *cells])
        md = [
            f"Experiment `{experiment}`, {len(runs)} runs; train pool sizes {sizes} (90% "
            "trained on), 2,160 steps each at cpu scale; mean ± 95% t-interval over seeds. Gap: "
            "train accuracy (eval mode, unaugmented) minus test accuracy.",
            table(["train pool", "arm", "seeds", "test err %", "gap (pts)"], rows),
            "Gain of augmentation (test error points) per size: "
            + "; ".join(f"{n}: {mean_ci(g).fmt(2, 100)}" for n, g in gain.items() if g)
            + ".",
        ]
        fig = self._figure(err, gap, sizes, out_dir)
        return Report.of(md, fig, "augmentation vs training-set size", verdicts)

    @staticmethod
    def _figure(err, gap, sizes, out_dir: Path) -> Path:
        fig, (ax, ax2) = new_figure(2, width=5.0, height=3.8)
        for axis, d in ((ax, err), (ax2, gap)):
            arm_bands(axis, d, ARMS, [LABELS[a] for a in ARMS], 100)
        for axis, label in ((ax, "test error (%)"), (ax2, "train acc - test acc (pts)")):
            log_ticks(axis, sizes)
            axis.set(xlabel="train pool (samples)", ylabel=label)
            axis.legend(fontsize=7)
        ax.set_title("Test error")
        ax2.set_title("Generalization gap")
        return save(fig, out_dir / "augmentation_overfitting.png")

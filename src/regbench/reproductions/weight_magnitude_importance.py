"""After training, a weight's magnitude reflects its importance: pruning the smallest
weights costs less accuracy than pruning random ones (Han, Pool, Tran & Dally, "Learning
both Weights and Connections for Efficient Neural Networks", NIPS 2015, arXiv
1506.02626).

Han et al. prune the weights of smallest magnitude, layer by layer, and keep accuracy to
high sparsity with retraining; their fig. 5 also prunes without retraining and finds
that L1-trained nets lose less accuracy than L2-trained ones at the same pruning rate
("L1 regularization gives better accuracy than L2 directly after pruning since it
pushes more parameters closer to zero"), while L2 wins after retraining. Magnitude
pruning against random pruning at the same sparsity is the direct test of "magnitude
carries importance" (random pruning: magnitude carries no information).

CPU scale (conf/experiment/weight_magnitude_importance.yaml, wmi_arm/*.yaml): MNIST-1D,
MLP 2 x [Linear-ReLU] width 256, SGD momentum 0.9, lr 0.05 cosine over 60 epochs, batch
100; arms none, L2 (2.5e-4 * sum w^2: the gradient of SGD weight decay 5e-4) and L1
(1e-4 * sum |w|), the same 6 seeds. The pruning probe (regbench.probes.pruning) zeroes
50%, 80% and 90% of every weight matrix (both hidden layers and the head), each layer on
its own, by magnitude or uniformly at random (mean of 5 draws from the run's stream), in
a copy of the trained net, without retraining, and records test accuracy.

Claims (declared before any run; paired per seed, both prunings of the same net):

- ``mag_<arm>_<s>``, for each arm and s in {0.5, 0.8, 0.9}: acc(magnitude-pruned) -
  acc(randomly pruned) > 0 (the folk claim names no size: its direction);
- ``l1_vs_l2``: at 90% sparsity, the accuracy lost to magnitude pruning (acc(full) -
  acc(pruned)) is smaller for the L1 net than for the L2 net, paired per seed (Han et al.
  fig. 5, without retraining).

Departs from the paper: no retraining (their headline numbers retrain); an MLP on
MNIST-1D (theirs: LeNet, AlexNet, VGG-16). Tiny scale: 600 train samples, width 32,
3 epochs, 2 seeds.
"""

from __future__ import annotations

from pathlib import Path

from regbench.report import RunRecord, mean_ci, table
from regbench.report.claims import Claim, judge, paired_by_seed
from regbench.report.markdown import ci_cell
from regbench.report.plots import COLORS, band, new_figure, save
from regbench.reproductions import REPRODUCTIONS
from regbench.reproductions.base import Report, Reproduction
from regbench.reproductions.seed_pairs import PTS, TINY_DATA, by_arm_seed, pair_seeds

ARMS = ["none", "l2", "l1"]
LABELS = {"none": "no penalty", "l2": "L2 2.5e-4", "l1": "L1 1e-4"}
ARM_KEY = "+experiment/wmi_arm"
SPARSITIES = [0.5, 0.8, 0.9]
TINY = [*TINY_DATA, "trainer.max_epochs=3", "diag.pruning.random_draws=2"]
HAN = "Han et al. 2015 (arXiv 1506.02626)"
PAIRED = {**PTS, "min_seeds": 5, "kind": "paired"}


def pruned_nets(arm: str) -> str:
    """What a claim is read off: the pruned copies of one arm's nets (the claims at the
    three sparsities of an arm share them: related)."""
    return f"pruned {LABELS[arm]} nets"


def _mag_claim(arm: str, s: float) -> Claim:
    return Claim(
        key=f"mag_{arm}_{s:g}",
        text=f"{LABELS[arm]}: magnitude pruning to {s:.0%} costs less than random pruning",
        statistic=f"acc(magnitude) - acc(random) at sparsity {s:g}, same net, per seed",
        direction="above",
        threshold=0.0,
        rationale=f"the folk 'magnitude = importance' behind {HAN}; random pruning = "
        "magnitude carries no information; no size claimed",
        role="folk",
        role_reason="the heuristic magnitude pruning rests on, as course notes state it; "
        "Han et al. prune by magnitude, the comparison with random pruning is not theirs",
        curves=(pruned_nets(arm),),
        **PAIRED,
    )


CLAIMS = {f"mag_{a}_{s:g}": _mag_claim(a, s) for a in ARMS for s in SPARSITIES}
CLAIMS["l1_vs_l2"] = Claim(
    key="l1_vs_l2",
    text="at 90% sparsity, magnitude pruning costs an L1 net less than an L2 net",
    statistic="drop(L2) - drop(L1), drop = acc(full) - acc(magnitude, 0.9), paired per seed",
    direction="above",
    threshold=0.0,
    rationale=f"{HAN} fig. 5: without retraining L1 keeps more accuracy than L2",
    curves=(pruned_nets("l1"), pruned_nets("l2")),
    **PAIRED,
)


def pruned(r: RunRecord, how: str, s: float) -> float:
    return r.metrics[f"diag/prune_acc/{how}/{s:g}"]


@REPRODUCTIONS.register("weight_magnitude_importance")
class WeightMagnitudeImportance(Reproduction):
    name = "weight_magnitude_importance"
    title = (
        "Han et al. 2015 (arXiv 1506.02626): pruning the smallest-magnitude weights to "
        "50/80/90% sparsity costs less accuracy than pruning random weights, with and "
        "without L1/L2; L1 nets lose less than L2 nets without retraining."
    )
    default_seeds = {"tiny": 2, "cpu": 6}

    axes = {ARM_KEY: ARMS}
    tiny = TINY

    def analyse(self, experiment: str, scale: str, out_dir: Path) -> Report:
        arm = lambda r: r.p("wmi_arm")  # noqa: E731
        runs = self.finished_runs(experiment, arm)
        acc = {("full", 0.0): by_arm_seed(runs, arm, lambda r: r.metrics["diag/test_acc"])}
        for how in ("magnitude", "random"):
            for s in SPARSITIES:
                acc[(how, s)] = by_arm_seed(runs, arm, lambda r, h=how, s=s: pruned(r, h, s))
        verdicts = []
        for a in ARMS:
            for s in SPARSITIES:
                mag, rnd = acc[("magnitude", s)].get(a, {}), acc[("random", s)].get(a, {})
                verdicts.append(judge(CLAIMS[f"mag_{a}_{s:g}"], paired_by_seed(mag, rnd)))
        full, mag9 = acc[("full", 0.0)], acc[("magnitude", 0.9)]
        drop_by = {a: pair_seeds(full.get(a, {}), mag9.get(a, {})) for a in ("l1", "l2")}
        verdicts.append(judge(CLAIMS["l1_vs_l2"], paired_by_seed(drop_by["l2"], drop_by["l1"])))
        md = [
            f"Experiment `{experiment}`, {len(runs)} runs; test accuracy after pruning every "
            "weight matrix to the given sparsity, no retraining (random: mean of the draws); "
            "mean ± 95% t-interval over seeds.",
            table(self._heads(), self._rows(acc)),
        ]
        fig = self._figure(acc, out_dir)
        return Report.of(md, fig, "magnitude vs random pruning", verdicts)

    @staticmethod
    def _heads() -> list[str]:
        heads = ["arm", "seeds", "unpruned acc %"]
        for s in SPARSITIES:
            heads += [f"magnitude {s:.0%}", f"random {s:.0%}"]
        return heads

    @staticmethod
    def _rows(acc: dict) -> list[list]:
        rows = []
        for a in ARMS:
            if a not in acc[("full", 0.0)]:
                continue
            row = [LABELS[a], len(acc[("full", 0.0)][a])]
            row.append(ci_cell(acc[("full", 0.0)][a], 1, 100))
            for s in SPARSITIES:
                for how in ("magnitude", "random"):
                    row.append(ci_cell(acc[(how, s)][a], 1, 100))
            rows.append(row)
        return rows

    @staticmethod
    def _figure(acc: dict, out_dir: Path) -> Path:
        arms = [a for a in ARMS if a in acc[("full", 0.0)]]
        fig, axes = new_figure(len(arms), width=3.8, height=3.6)
        xs = [0.0, *SPARSITIES]
        for ax, a in zip(axes, arms, strict=True):
            for i, how in enumerate(("magnitude", "random")):
                points = [("full", 0.0)] + [(how, s) for s in SPARSITIES]
                curve = [mean_ci(acc[p][a].values()) for p in points]
                band(ax, xs, curve, f"{how} pruning", COLORS[i], 100)
            ax.set(xlabel="sparsity of every weight matrix", title=LABELS[a])
            ax.legend(fontsize=7)
        axes[0].set(ylabel="test accuracy (%), no retraining")
        return save(fig, out_dir / "weight_magnitude_importance.png")

"""Dropout prevents co-adaptation: a dropout-trained net should lose less when random
hidden units are removed at test time (Hinton, Srivastava, Krizhevsky, Sutskever &
Salakhutdinov 2012, arXiv 1207.0580; Srivastava et al. 2014, JMLR 15(56), sec. 7.1).

The popular reading: in a plain net a unit is useful only together with particular other
units (co-adaptation); dropout trains every unit to work with random subsets of the
others, so the net is robust to losing units. Neither paper measures test-time ablation;
the claim is the folk consequence, put to the test. Morcos, Barrett, Rabinowitz &
Botvinick (ICLR 2018, arXiv 1803.06959) do ablate units and say in their abstract that
dropout regularizes a net's reliance on single directions "only up to a point" (their
figures were not re-read for this reproduction, so the claims stay folk).

CPU scale (conf/experiment/dropout_coadaptation.yaml): MNIST-1D, MLP 2 x [Linear-ReLU-
Dropout] width 256, SGD momentum 0.9, lr 0.05 cosine over 60 epochs, batch 100, arms
``model.dropout`` = 0 (plain) and 0.5, the same 6 seeds (same init and batch order).
Each run's ablation probe (regbench.probes.ablation) zeroes a random fraction f of the
units of both hidden layers at once (no rescaling of the rest), 20 random subsets per f
from the run's own stream, and records the mean test accuracy.

Statistic, per seed and f: the fraction of above-chance accuracy lost,
L_f = (acc - acc_f) / (acc - 0.1), acc the intact test accuracy, 0.1 chance on 10
classes. Normalizing by what there is to lose keeps a better net from losing more points
only because it has more above chance. Claims (declared before any run), for f = 0.1,
0.25, 0.5: L_f(plain) - L_f(dropout) > 0, paired per seed (the folk claim names no size,
so the threshold is its direction).

Tiny scale: 600 train samples, width 32, 3 epochs, 3 draws, 2 seeds (the same code path;
fewer seeds than the claims need).
"""

from __future__ import annotations

from pathlib import Path

from regbench.report import RunRecord, mean_ci, table
from regbench.report.claims import Claim, judge, paired_by_seed
from regbench.report.markdown import ci_cell
from regbench.report.plots import COLORS, band, new_figure, save
from regbench.reproductions import REPRODUCTIONS
from regbench.reproductions.base import Report, Reproduction
from regbench.reproductions.seed_pairs import TINY_DATA, by_arm_seed

FRACTIONS = [0.1, 0.25, 0.5]
RATES = [0.0, 0.5]  # plain, dropout (Srivastava et al.'s hidden retain rate p = 0.5)
LABELS = {0.0: "plain", 0.5: "dropout 0.5"}
TINY = [*TINY_DATA, "trainer.max_epochs=3", "diag.ablation.draws=3"]
CHANCE = 0.1


def _claim(f: float) -> Claim:
    return Claim(
        key=f"ablate_{f:g}",
        text=f"removing {f:.0%} of the hidden units costs a dropout net less",
        statistic=f"L(plain) - L(dropout) at f = {f:g}, L = (acc - acc_f) / (acc - 0.1), "
        "paired per seed",
        direction="above",
        threshold=0.0,
        rationale="folk consequence of Hinton et al. 2012 (arXiv 1207.0580): dropout "
        "prevents co-adaptation; no size is claimed, so its direction",
        min_seeds=5,
        role="folk",
        role_reason="the popular reading of the co-adaptation argument, which Hinton et al. and "
        "Srivastava et al. do not test by ablation (Morcos et al. 2018, arXiv 1803.06959, "
        "ablate units; their abstract: dropout reduces that reliance 'only up to a point')",
        kind="paired",
        curves=("ablation of the same nets",),
        scale=100,
        digits=1,
        unit="%",
    )


CLAIMS = {f: _claim(f) for f in FRACTIONS}


def lost(r: RunRecord, f: float) -> float:
    """Fraction of above-chance test accuracy lost when a fraction f of units is ablated."""
    acc = r.metrics["diag/test_acc"]
    return (acc - r.metrics[f"diag/ablate_acc/{f:g}"]) / max(acc - CHANCE, 1e-3)


@REPRODUCTIONS.register("dropout_coadaptation")
class DropoutCoadaptation(Reproduction):
    name = "dropout_coadaptation"
    title = (
        "Hinton et al. 2012 (arXiv 1207.0580), folk reading: a dropout-trained net loses "
        "less accuracy than a plain one when random hidden units are ablated at test time."
    )
    default_seeds = {"tiny": 2, "cpu": 6}

    axes = {"model.dropout": RATES}
    tiny = TINY

    def analyse(self, experiment: str, scale: str, out_dir: Path) -> Report:
        arm = lambda r: r.p("model.dropout", float)  # noqa: E731
        runs = self.finished_runs(experiment, arm)
        fracs = sorted(
            float(k.rsplit("/", 1)[1]) for k in runs[0].metrics if k.startswith("diag/ablate_acc/")
        )
        loss = {f: by_arm_seed(runs, arm, lambda r, f=f: lost(r, f)) for f in fracs}
        verdicts = [
            judge(CLAIMS[f], paired_by_seed(loss[f].get(0.0, {}), loss[f].get(0.5, {})))
            for f in FRACTIONS
            if f in loss
        ]
        acc = {
            f: by_arm_seed(runs, arm, lambda r, f=f: r.metrics[f"diag/ablate_acc/{f:g}"])
            for f in fracs
        }
        acc[0.0] = by_arm_seed(runs, arm, lambda r: r.metrics["diag/test_acc"])
        rows = []
        for rate in RATES:
            row = [LABELS[rate], len(acc[0.0].get(rate, {}))]
            row.append(ci_cell(acc[0.0].get(rate, {}), 1, 100))
            for f in fracs:
                row += [
                    ci_cell(acc[f].get(rate, {}), 1, 100),
                    ci_cell(loss[f].get(rate, {}), 1, 100),
                ]
            rows.append(row)
        heads = ["arm", "seeds", "test acc %"]
        for f in fracs:
            heads += [f"acc % at f={f:g}", f"L % at f={f:g}"]
        md = [
            f"Experiment `{experiment}`, {len(runs)} runs; mean ± 95% t-interval over seeds. "
            "f: fraction of the units of both hidden layers set to 0 at test time (mean over "
            "random subsets); L: fraction of the above-chance accuracy lost, "
            "(acc - acc_f) / (acc - 0.1).",
            table(heads, rows),
        ]
        fig = self._figure(acc, loss, fracs, out_dir)
        return Report.of(md, fig, "unit ablation", verdicts)

    @staticmethod
    def _figure(acc: dict, loss: dict, fracs: list[float], out_dir: Path) -> Path:
        fig, (ax, ax2) = new_figure(2, width=5.0, height=3.8)
        xs = [0.0, *fracs]
        for i, rate in enumerate(RATES):
            if rate not in acc[0.0]:
                continue
            band(ax, xs, [mean_ci(acc[f][rate].values()) for f in xs], LABELS[rate], COLORS[i], 100)
            curve = [mean_ci(loss[f][rate].values()) for f in fracs]
            band(ax2, fracs, curve, LABELS[rate], COLORS[i], 100)
            for s in acc[0.0][rate]:  # one thin line per seed
                per_seed = [100 * loss[f][rate][s] for f in fracs]
                ax2.plot(fracs, per_seed, color=COLORS[i], lw=0.6, alpha=0.4)
        x_label = "fraction of hidden units ablated"
        ax.set(xlabel=x_label, ylabel="test accuracy (%)", title="Accuracy under unit ablation")
        ax2.set(xlabel=x_label, ylabel="above-chance accuracy lost (%)", title="L per seed, mean")
        ax.legend(fontsize=7)
        ax2.legend(fontsize=7)
        return save(fig, out_dir / "dropout_coadaptation.png")

"""Dropout/BatchNorm disharmony by variance shift (Li, Chen, Hu, Yang, CVPR 2019,
arXiv 1801.05134).

Grid: dropout placement {none, directly before BN, only after the last BN (head),
Uout before BN} x rate x seeds (``none`` at one rate: it has no dropout). Per run,
``regbench.diagnostics`` logs per BN layer the shift ``max(real_var / moving_var,
moving_var / real_var)`` (channel mean), the same after BN re-estimation, the channel
mean of q = c^2 / v of the layer's input (mean c, variance v, eval mode), test accuracy
before/after re-estimation, and train-set accuracy in train and eval mode.

Theory (Li et al., their variance-shift formula): multiplicative noise g before BN with
E g = 1 makes the train-time variance (c^2 + v) E g^2 - c^2 against v at inference, so the
shift per channel is 1 + (1 + q)(E g^2 - 1): E g^2 = 1/p for inverted dropout with retain
p = 1 - rate (1/p on zero-mean input), 1 + b^2/3 for Uout with b = rate. The first BN
layer sees no upstream noise, so its shift is the clean test of the formula with the
measured q; deeper layers compound. CPU setup: docs/REPRODUCTIONS.md section 1.

The running variance is an exponential average (momentum m) of batch variances over B
samples, so it is noisy even without dropout: relative sd sqrt(m (k - 1) / ((2 - m) B))
for inputs of kurtosis k (k = 3 for Gaussian inputs: sqrt(2 m / ((2 - m) B)), 4.1% at
m = 0.1, B = 64; multiplicative noise raises k to 3 E g^4 / (E g^2)^2, 3/p for dropout).
Claims, each over seeds (at least 3) on its 95% t-interval:

- dropout before BN, rate 0.5: the first BN's shift agrees with the formula (measured
  q) within 2 x that relative sd, and lies above 1/p (the formula's value at c = 0, its
  minimum over input means);
- Uout before BN, b = 0.5: the first BN's shift agrees with its formula, same tolerance;
- no dropout, and dropout only after the last BN: the shift (mean over BN layers) is
  below the noise floor 1 + 2 x the Gaussian relative sd;
- BN re-estimation (dropout before BN, 0.5) raises test accuracy (paired per seed), and
  its shift is below the floor (a sanity check: re-estimation measures what the shift
  compares against; its cumulative average over all train batches is less noisy than
  the running average, so the same floor holds).
"""

from __future__ import annotations

import math
from pathlib import Path

from regbench.report import RunRecord, load_runs, table
from regbench.report.axes import group_by_axes, per_seed, summarize_seeds
from regbench.report.claims import Claim, Verdict, judge
from regbench.report.groups import Arms
from regbench.report.plots import (
    COLORS,
    DODGE_PT,
    band,
    clip_to,
    log_labels,
    new_figure,
    plot,
    save,
    value_ticks,
)
from regbench.reproductions import REPRODUCTIONS
from regbench.reproductions.base import Report, Reproduction

PLACEMENTS = ["none", "before_bn", "head", "uout"]
LABELS = {
    "none": "no dropout",
    "before_bn": "dropout before BN",
    "head": "dropout after last BN",
    "uout": "Uout before BN",
}
RATES = {"cpu": [0.1, 0.3, 0.5], "paper": [0.1, 0.3, 0.5], "tiny": [0.5]}
TOP = 0.5  # the rate every claim is about (the paper's headline dropout rate)
TINY = ["data.n_train=300", "data.n_test=200", "trainer.max_epochs=2"]
LI = "Li et al. 2019 (arXiv 1801.05134), variance-shift formula"
FLOOR_WHY = {  # why the floor claims are checks, not evidence for Li et al.
    "none": "no dropout anywhere: the shift can only be the running variance's own noise; "
    "it calibrates the floor",
    "head": "by construction: no BN layer comes after the dropout, so none sees its noise",
}


def noise_moments(placement: str, rate: float) -> tuple[float, float]:
    """E g^2 and E g^4 of the multiplicative noise g in front of BN (1, 1 without)."""
    if placement == "before_bn":
        p = 1.0 - rate
        return 1 / p, 1 / p**3
    if placement == "uout":  # g = 1 + r, r ~ U(-b, b): E r^2 = b^2/3, E r^4 = b^4/5
        return 1 + rate**2 / 3, 1 + 2 * rate**2 + rate**4 / 5
    return 1.0, 1.0


def theory(placement: str, rate: float, q: float = 0.0) -> float:
    """The formula's shift per channel for input mean^2/variance ``q``."""
    return 1 + (1 + q) * (noise_moments(placement, rate)[0] - 1)


def ema_sd(momentum: float, batch: int, placement: str = "none", rate: float = 0.0) -> float:
    """Relative sd of BN's running variance: sqrt(m (k - 1) / ((2 - m) B))."""
    g2, g4 = noise_moments(placement, rate)
    kurt = 3 * g4 / g2**2
    return math.sqrt(momentum * (kurt - 1) / ((2 - momentum) * batch))


def layer_keys(rec: RunRecord, prefix: str = "diag/var_shift/") -> list[str]:
    keys = [k for k in rec.metrics if k.startswith(prefix)]
    return sorted(keys, key=lambda k: int(k[len(prefix) + 2 :]))  # bn1, bn2, ..., bn10


def mean_shift(rec: RunRecord, prefix: str = "diag/var_shift/") -> float:
    keys = layer_keys(rec, prefix)
    return sum(rec.metrics[k] for k in keys) / len(keys)


def agreement(r: RunRecord) -> float:
    """First BN layer: measured shift / the formula's with its measured q, minus 1."""
    return r.metrics["diag/var_shift/bn1"] / formula_bn1(r) - 1


def formula_bn1(r: RunRecord) -> float:
    """The formula's shift of the first BN layer with its input's measured q."""
    return theory(r.p("vs_placement"), r.p("vs_rate", float), r.metrics["diag/bn_input_q/bn1"])


QUANTITIES = {
    "shift": mean_shift,
    "shift_bn1": lambda r: r.metrics["diag/var_shift/bn1"],
    "pred_bn1": lambda r: theory(
        r.p("vs_placement"), r.p("vs_rate", float), r.metrics["diag/bn_input_q/bn1"]
    ),  # fmt: skip
    "agree": agreement,
    "shift_reest": lambda r: mean_shift(r, "diag/var_shift_reest/"),
    "test": lambda r: r.metrics["diag/test_acc"],
    "test_reest": lambda r: r.metrics["diag/test_acc_reest"],
    "gain": lambda r: r.metrics["diag/test_acc_reest"] - r.metrics["diag/test_acc"],
    "tr_train": lambda r: r.metrics["diag/train_acc_trainmode"],
    "tr_eval": lambda r: r.metrics["diag/train_acc_evalmode"],
}


def claims(momentum: float, batch: int) -> list[tuple[str, float, str, Claim]]:
    """(placement, rate, quantity, claim), thresholds from BN's momentum and batch."""
    s0, floor = ema_sd(momentum, batch), 1 + 2 * ema_sd(momentum, batch)
    noise = f"m={momentum:g}, B={batch}"
    out = []
    for pl in ("before_bn", "uout"):
        tol = 2 * ema_sd(momentum, batch, pl, TOP)
        out.append((pl, TOP, "agree", Claim(
            f"formula_{pl}", f"{LABELS[pl]}, {TOP}: the first BN's shift agrees with the "
            "formula", "per seed: bn1 shift / formula(q measured) - 1", "within", 0.0,
            f"{LI}; tolerance 2 x the running variance's relative sd with this noise's "
            f"kurtosis ({noise})", delta=tol, scale=100, digits=1, unit="%",
            curves=(f"bn1 shift, {LABELS[pl]} {TOP}",))))  # fmt: skip
    out.append(("before_bn", TOP, "shift_bn1", Claim(
        "above_zero_mean", f"dropout before BN, {TOP}: the first BN's shift is above 1/p",
        "per seed: bn1 shift", "above", theory("before_bn", TOP),
        f"{LI} at c = 0, its minimum over input means", digits=2,
        curves=(f"bn1 shift, {LABELS['before_bn']} {TOP}",))))  # fmt: skip
    for pl, rate in (("none", None), ("head", TOP)):
        out.append((pl, rate, "shift", Claim(
            f"floor_{pl}", f"{LABELS[pl]}{'' if rate is None else f', {rate}'}: no shift "
            "beyond the running variance's noise", "per seed: shift, mean over BN layers",
            "below", floor, f"1 + 2 x sqrt(2m/((2-m)B)) = 1 + 2 x {s0:.3f} ({noise}; "
            "docs/REPRODUCTIONS.md section 1)", digits=3, role="check",
            role_reason=FLOOR_WHY[pl])))  # fmt: skip
    out.append(("before_bn", TOP, "gain", Claim(
        "reest_gain", f"dropout before BN, {TOP}: re-estimating BN raises test accuracy",
        "per seed: test acc (re-estimated) - test acc, paired", "above", 0.0,
        f"{LI}: the shift is what costs accuracy at inference", scale=100, digits=1,
        unit=" pts", kind="paired")))  # fmt: skip
    out.append(("before_bn", TOP, "shift_reest", Claim(
        "reest_floor", f"dropout before BN, {TOP}: no shift after re-estimation (sanity "
        "check: re-estimation measures what the shift compares against)",
        "per seed: shift after re-estimation, mean over BN layers", "below", floor,
        f"the floor above ({noise}); re-estimation averages more batches, so its own "
        "noise is smaller", digits=3, role="check", role_reason="re-estimation sets BN's "
        "statistics to the quantity the shift compares them with: a sanity check of the "
        "re-estimation code")))  # fmt: skip
    return out


def judge_claims(groups: dict, vals: dict) -> list[Verdict]:
    """Every claim's verdict on its (placement, rate) point, per seed. The thresholds come
    from the logged BN momentum and batch size; a claim without a rate (``none``: no
    dropout, so it runs at one rate only) is judged at the lowest rate it ran at."""
    some = next(iter(groups.values()))[0]
    momentum, batch = some.p("model.norm_momentum", float), some.p("data.batch_size", int)
    verdicts = []
    for pl, rate, q, claim in claims(momentum, batch):
        rate = rate if rate is not None else min(r for p, r in groups if p == pl)
        per = vals[q].get((pl, rate), {})
        verdicts.append(judge(claim, [per[s] for s in sorted(per)]))
    return verdicts


@REPRODUCTIONS.register("variance_shift")
class VarianceShift(Reproduction):
    name = "variance_shift"
    title = (
        "Li et al. 2019 (arXiv 1801.05134): dropout directly before BatchNorm shifts the "
        "variance BN sees between training and inference, as their formula predicts; "
        "dropout only after the last BN, or re-estimating BN statistics, removes the shift."
    )
    default_seeds = {"tiny": 2, "cpu": 3, "paper": 3}
    arms = Arms("vs_placement", LABELS, baseline="none")

    # every placement x rate; :meth:`train` runs ``none`` at one rate only
    axes = {"+experiment/vs_placement": PLACEMENTS, "vs_rate": RATES}
    tiny = TINY

    def train(self, scale: str, seeds: list[int], n_jobs: int) -> str | None:
        """Two grids: ``none`` has no dropout, so its rate changes nothing and it runs at
        the first rate only (its row and line stand for every rate); then the placements
        with dropout x every rate."""
        from regbench.reproductions.base import grid

        base, axes = self.grid(scale)
        experiment = self.experiment_name(scale)
        key, rates = "+experiment/vs_placement", axes["vs_rate"]
        plain = grid(
            f"{experiment}-none", base, {key: ["none"], "vs_rate": rates[:1]}, seeds, n_jobs,
            experiment, self.objective,
        )  # fmt: skip
        self.check(plain, experiment, scale)
        dropped = [p for p in axes[key] if p != "none"]
        results = grid(
            experiment, base, {key: dropped, "vs_rate": rates}, seeds, n_jobs, experiment,
            self.objective,
        )  # fmt: skip
        return self.check(results, experiment, scale)

    def analyse(self, experiment: str, scale: str, out_dir: Path) -> Report:
        groups = group_by_axes(load_runs(experiment), {"vs_placement": str, "vs_rate": float})
        self.require_runs(groups, experiment)
        vals = {q: per_seed(groups, f) for q, f in QUANTITIES.items()}
        S = {q: summarize_seeds(v) for q, v in vals.items()}
        verdicts = judge_claims(groups, vals)
        figure = self._figure(S, groups, out_dir)
        md = [
            f"Experiment `{experiment}`, {sum(map(len, groups.values()))} runs; mean ± 95% "
            "t-interval over seeds. Shift = max(real/moving, moving/real) variance, channel "
            "mean; 'formula bn1' = Li et al.'s formula with the first BN input's measured "
            "mean and variance; 'zero-mean theory' = the formula at c = 0.",
            self._table(S, groups),
            "Published (Li et al. 2019, CIFAR-100 DenseNet): 77.42% test accuracy without "
            "dropout vs 68.55% with dropout 0.5 in every bottleneck (a different model and "
            "data set: context, not a claim here).",
        ]
        return Report.of(md, figure, "variance shift", verdicts)

    @staticmethod
    def _table(S, groups) -> str:
        layers = [k.rsplit("/", 1)[-1] for k in layer_keys(next(iter(groups.values()))[0])]
        rows = []
        for pl, rate in sorted(groups, key=lambda k: (PLACEMENTS.index(k[0]), k[1])):
            rs = groups[pl, rate]
            per_layer = [
                f"{sum(r.metrics[f'diag/var_shift/{x}'] for r in rs) / len(rs):.2f}" for x in layers
            ]
            g = {q: S[q][pl, rate] for q in S}
            rows.append([
                LABELS[pl], "-" if pl == "none" else rate, *per_layer, g["shift"].fmt(2),
                g["shift_bn1"].fmt(3), g["pred_bn1"].fmt(3), f"{theory(pl, rate):.2f}",
                g["shift_reest"].fmt(3), g["test"].fmt(1, 100), g["test_reest"].fmt(1, 100),
                g["tr_train"].fmt(1, 100), g["tr_eval"].fmt(1, 100),
            ])  # fmt: skip
        heads = [
            "placement",
            "rate",
            *[f"shift {x} (mean)" for x in layers],
            "shift (mean)",
            "shift bn1",
            "formula bn1",
            "zero-mean theory",
            "shift after re-est.",
            "test %",
            "test % re-est.",
            "train % (train mode)",
            "train % (eval mode)",
        ]
        return table(heads, rows)

    @staticmethod
    def _figure(S, groups, out_dir: Path) -> Path:
        from matplotlib.lines import Line2D

        fig, (ax1, ax2) = new_figure(2)
        rates = sorted({r for _, r in groups})
        for i, pl in enumerate(p for p in PLACEMENTS if any(k[0] == p for k in groups)):
            rs = [r for r in rates if (pl, r) in groups]
            at = {r: r for r in rs}
            if pl == "none":  # no dropout: one run stands for every rate
                at, rs = dict.fromkeys(rates, rs[0]), rates
            shift = (i - 1.5) * DODGE_PT  # arms side by side where they share a rate
            band(
                ax1,
                rs,
                [S["shift_bn1"][pl, at[r]] for r in rs],
                LABELS[pl],
                COLORS[i],
                ls="-",
                dodge=shift,
            )  # fmt: skip  (solid: measured; dotted: formula)
            plot(ax1, rs, [S["pred_bn1"][pl, at[r]].mean for r in rs], shift, ls=":",
                 marker="x", ms=6, color=COLORS[i])  # fmt: skip
            band(ax2, rs, [S["test"][pl, at[r]] for r in rs], LABELS[pl], COLORS[i], scale=100,
                 dodge=shift)  # fmt: skip
            if pl == "before_bn":
                band(ax2, rs, [S["test_reest"][pl, r] for r in rs], "before BN, BN re-estimated",
                     COLORS[4], scale=100, dodge=shift + DODGE_PT / 2)  # fmt: skip
        formula = Line2D([], [], ls=":", marker="x", color="0.3", label="formula (measured q)")
        ax1.set(
            xlabel="dropout rate (Uout: b)",
            ylabel="variance shift, first BN layer",
            yscale="log",
            title="First BN layer: measured, and the formula (x)",
        )
        ax2.set(xlabel="dropout rate (Uout: b)", ylabel="test accuracy (%)", title="Test accuracy")
        for ax in (ax1, ax2):
            value_ticks(ax, rates)
            ax.set_xlim(min(rates) - 0.1, max(rates) + 0.1)
        log_labels(ax1)
        clip_to(ax2, 0, 100)
        ax1.legend(handles=[*ax1.get_legend_handles_labels()[0], formula], fontsize=7)
        ax2.legend(fontsize=7)
        return save(fig, out_dir / "variance_shift.png")

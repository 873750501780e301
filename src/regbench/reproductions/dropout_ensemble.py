"""Dropout as an ensemble of masks: the primer's formula MSE_k = V/k + (k-1)/k C, out of
sample, and its claim that dropout drives the covariance C towards 0.

A member is the trained net under one dropout mask; its error on an input x with one-hot
label y is e = softmax(f_m(x)) - y (the Brier-score error of the probability vector).
For k members with i.i.d. masks, the mean member's squared error has expectation
V/k + (k-1)/k C, V = E|e|^2 and C = E<e, e'> for two different masks (the bias-variance
decomposition of an average of exchangeable members; e.g. Krogh & Vedelsby 1995). With
V and C taken from the same members it is an identity, so it is tested out of sample:

1-2. *Prediction.* V and C are estimated from 64 mask passes per validation sample
     (400 samples the net never trained on); the formula then predicts the test error of
     the k-mask average, k = 1..64, which is measured from 64 fresh passes per test
     sample. Per net, z(k) = (predicted - measured) / bootstrap sd, the bootstrap
     resampling validation and test samples (200 resamples). Claim: |mean z| within 2
     (the 95% band of a correct prediction) at k = 1 (V alone) and k = 64 (mostly C).
3.   *The primer's claim.* Dropout makes the members' errors nearly uncorrelated:
     rho = C/V on test below 0.5 (C -> 0 read generously: at rho = 0.5 an infinite
     ensemble only halves V). Expected REFUTED: the members share every weight.
4.   *Against independently trained nets.* rho of the mask members of one net minus rho
     of mask members drawn from different, independently trained nets (same V, the
     covariance taken across nets), paired per net: below 0 if dropout's members were
     at least as diverse as independent training makes them.

CPU scale: ``conf/experiment/dropout_ensemble.yaml`` (MLP 40-256-256-10, dropout 0.5,
SGD momentum 0.9, lr 0.05 cosine, 60 epochs), 5 nets (seeds 0-4), which also serve as
the independently trained nets.
"""

from __future__ import annotations

from pathlib import Path

import torch

from regbench.report import load_runs, mean_ci, table
from regbench.report.claims import Claim, judge, readings
from regbench.report.plots import (
    COLORS,
    DODGE_PT,
    band,
    log_labels,
    new_figure,
    plot,
    save,
    value_ticks,
)
from regbench.reproductions import REPRODUCTIONS
from regbench.reproductions.base import Report, Reproduction
from regbench.reproductions.dropout_eval import load_trained, mask_log_probs

K, BOOT, Z_BAND, RHO_PRIMER = 64, 200, 2.0, 0.5
PRIMER = (
    "an unnamed primer's claim that dropout decorrelates its members "
    "(docs/REPRODUCTIONS.md section 8)"
)
VAL_SEED, TEST_SEED, BOOT_SEED = 1001, 2002, 3003  # fixed: a rebuilt report is identical
TINY = ["data.n_train=600", "data.n_test=200", "model.width=32", "trainer.max_epochs=2"]


def _z_claim(k: int) -> Claim:
    return Claim(
        f"z{k}",
        f"V and C from validation predict the test error of the {k}-mask average",
        f"z = (predicted - measured) / bootstrap sd at k = {k}",
        "within",
        0.0,
        "a correct prediction lies within 2 bootstrap sd (95%) of the measured error",
        delta=Z_BAND,
        digits=2,
        curves=("predicted vs measured ensemble error over k",),
    )


CLAIMS = {
    "z1": _z_claim(1),
    "z64": _z_claim(K),
    "rho": Claim(
        "rho",
        "primer: dropout drives the members' error covariance C towards 0",
        "rho = C / V of one net's mask members, test",
        "below",
        RHO_PRIMER,
        "C -> 0 read generously: at rho = 0.5 an infinite ensemble only halves V",
        digits=3,
        role="folk",
        role_reason=PRIMER,
        curves=("rho of one net's mask members",),
    ),
    "rho_vs_indep": Claim(
        "rho_vs_indep",
        "mask members are less correlated than members of independently trained nets",
        "rho(masks of one net) - rho(masks of different nets), paired per net",
        "below",
        0.0,
        "the primer's claim compared with independent training (0: as diverse)",
        digits=3,
        kind="paired",
        role="folk",
        role_reason=PRIMER,
        curves=("rho of one net's mask members",),
    ),
}


RHO_REFUTED = (
    "Why C does not go to 0: the mask members share every weight and were trained "
    "together so that each one alone is right, so they make mostly the same errors; the "
    "average of many masks removes only the small mask-to-mask part V - C of the error."
)
INDEP_REFUTED = (
    "Independently trained nets disagree more than the masks of one net do, so an "
    "ensemble of separately trained nets gains more from averaging than dropout's "
    "implicit ensemble."
)


READINGS = {("rho", "REFUTED"): RHO_REFUTED, ("rho_vs_indep", "REFUTED"): INDEP_REFUTED}


def member_errors(model, x, y, seed: int) -> torch.Tensor:
    """Errors softmax(f_m(x)) - onehot(y) of K mask members: (K, N, C), float64."""
    probs = mask_log_probs(model, x, K, seed).exp().double()
    return probs - torch.nn.functional.one_hot(y, probs.shape[2]).double()


def moments(e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample V and C from K members' errors (K, N, C): (N,), (N,). C averages
    <e_j, e_j'> over the K(K-1) ordered pairs j != j' with different masks."""
    k = e.shape[0]
    v = (e**2).sum(2).mean(0)
    s = (e.sum(0) ** 2).sum(1)  # |sum_j e_j|^2 = sum_j |e_j|^2 + sum_{j != j'} <e_j, e_j'>
    return v, (s - k * v) / (k * (k - 1))


def measured(e: torch.Tensor) -> torch.Tensor:
    """Per-sample squared error of the average of the first k members: (N, K)."""
    ks = torch.arange(1, e.shape[0] + 1, dtype=e.dtype)[:, None, None]
    return ((e.cumsum(0) / ks) ** 2).sum(2).T


def net_stats(run_id: str) -> dict:
    """Prediction from validation, measured test curve, bootstrap z and test rho."""
    _, model, splits = load_trained(run_id)
    v_val, c_val = moments(member_errors(model, splits.x_val, splits.y_val, VAL_SEED))
    e_test = member_errors(model, splits.x_test, splits.y_test, TEST_SEED)
    per_k = measured(e_test)  # (N, K)
    ks = torch.arange(1, K + 1, dtype=torch.float64)

    def predict(v, c):
        return v / ks + (ks - 1) / ks * c

    pred, meas = predict(v_val.mean(), c_val.mean()), per_k.mean(0)
    g = torch.Generator().manual_seed(BOOT_SEED)
    diffs = []
    for _ in range(BOOT):
        iv = torch.randint(0, len(v_val), (len(v_val),), generator=g)
        it = torch.randint(0, len(per_k), (len(per_k),), generator=g)
        diffs.append(predict(v_val[iv].mean(), c_val[iv].mean()) - per_k[it].mean(0))
    sd = torch.stack(diffs).std(0)
    v_t, c_t = moments(e_test)
    return {
        "pred": pred,
        "meas": meas,
        "z": (pred - meas) / sd,
        "v": v_t.mean().item(),
        "rho": (c_t.mean() / v_t.mean()).item(),
        "mean_err": e_test.mean(0),  # (N, C): for covariances across nets
    }


def indep_rho(stats: dict) -> dict:
    """Per net s: mean over other nets t of E<e_s, e_t> (masks independent across nets,
    so the product of the mask-averaged errors is unbiased), over V of net s."""
    out = {}
    for s, st in stats.items():
        cs = [
            (st["mean_err"] * o["mean_err"]).sum(1).mean().item()
            for t, o in stats.items()
            if t != s
        ]
        if cs:
            out[s] = sum(cs) / len(cs) / st["v"]
    return out


@REPRODUCTIONS.register("dropout_ensemble")
class DropoutEnsemble(Reproduction):
    name = "dropout_ensemble"
    title = (
        "Dropout as an ensemble (a primer's MSE = V/k + (k-1)/k C): the formula out of "
        "sample, and whether dropout drives the members' covariance C towards 0."
    )
    default_seeds = {"tiny": 2, "cpu": 5}
    axes = {"model.dropout": [0.5]}
    tiny = TINY

    def analyse(self, experiment: str, scale: str, out_dir: Path) -> Report:
        runs = sorted(load_runs(experiment, key=lambda r: r.seed), key=lambda r: r.seed)
        self.require_runs(runs, experiment)
        stats = {r.seed: net_stats(r.run_id) for r in runs}
        ind = indep_rho(stats)
        seeds = sorted(stats)
        verdicts = [
            judge(CLAIMS["z1"], [stats[s]["z"][0].item() for s in seeds]),
            judge(CLAIMS["z64"], [stats[s]["z"][K - 1].item() for s in seeds]),
            judge(CLAIMS["rho"], [stats[s]["rho"] for s in seeds]),
            judge(CLAIMS["rho_vs_indep"], [stats[s]["rho"] - ind[s] for s in sorted(ind)]),
        ]
        fig = self._figure(stats, ind, out_dir)
        md = [self._table(stats, ind), *readings(verdicts, READINGS)]
        return Report.of(md, fig, "dropout ensemble", verdicts)

    @staticmethod
    def _table(stats: dict, ind: dict) -> str:
        rows = []
        for s, st in sorted(stats.items()):
            rows.append(
                [
                    s,
                    f"{st['v']:.4f}",
                    f"{st['rho']:.3f}",
                    f"{ind[s]:.3f}" if s in ind else "",
                    *(f"{st['pred'][k - 1]:.4f} / {st['meas'][k - 1]:.4f}" for k in (1, 8, K)),
                    f"{st['z'][0]:+.2f} / {st['z'][K - 1]:+.2f}",
                ]
            )
        heads = ["net (seed)", "V (test)", "rho masks", "rho other nets"]
        heads += [f"k={k}: predicted / measured" for k in (1, 8, K)] + [f"z at k=1 / {K}"]
        return (
            "Per net: test Brier error V of one mask member, rho = C/V between two masks of "
            "the same net and between masks of different nets, and the k-mask average's "
            "test error as predicted from validation moments and as measured:\n\n"
            + table(heads, rows)
        )

    @staticmethod
    def _figure(stats: dict, ind: dict, out_dir: Path) -> Path:
        fig, (ax0, ax1) = new_figure(2, width=4.8, height=3.6)
        ks = list(range(1, K + 1))
        for i, key in enumerate(("meas", "pred")):
            curve = [mean_ci([st[key][k - 1].item() for st in stats.values()]) for k in ks]
            label = "measured on test" if key == "meas" else "V/k + (k-1)/k C, V and C from val"
            band(ax0, ks, curve, label, COLORS[i], marker="")
        ax0.set(xscale="log", xlabel="masks averaged k", ylabel="test Brier error")
        log_labels(ax0, "x")
        ax0.legend(fontsize=7)
        seeds = sorted(stats)
        plot(ax1, seeds, [stats[s]["rho"] for s in seeds], -DODGE_PT / 2, ls="", marker="o",
             color=COLORS[0], label="masks, one net")  # fmt: skip
        plot(ax1, sorted(ind), [ind[s] for s in sorted(ind)], DODGE_PT / 2, ls="", marker="s",
             color=COLORS[2], label="masks, other nets")  # fmt: skip
        ax1.axhline(RHO_PRIMER, color="gray", ls=":", label="primer claim: below this")
        ax1.set(xlabel="net (seed)", ylabel="rho = C / V", ylim=(0, 1.05))
        value_ticks(ax1, seeds)
        ax1.set_xlim(min(seeds) - 0.5, max(seeds) + 0.5)
        ax1.legend(fontsize=7)
        return save(fig, out_dir / "dropout_ensemble.png")

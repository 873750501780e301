"""L2 regularization vs weight decay (Loshchilov & Hutter, "Decoupled Weight Decay
Regularization", ICLR 2019, arXiv 1711.05101).

For SGD an L2 penalty (lambda/2) ||w||^2 and weight decay w <- w - lr lambda w are the same
update (the penalty's gradient is lambda w), with or without momentum. For Adam they are
not: the penalty's gradient passes through Adam's normalization by sqrt(v), so weights
with large gradients are decayed less, while decoupled decay (AdamW) shrinks every
weight by the same factor. L&H's fig. 2 (ResNet on CIFAR-10, a grid of learning rate x
weight decay, test error after 100 epochs) shows AdamW's basin of good settings
axis-aligned ("more separable": the best decay hardly moves with the rate) and Adam+L2's
along a diagonal, and AdamW reaching the lower best error.

**Exact checks** (a direct run per seed, float64, 100 steps of the experiment's MLP on
MNIST-1D batches, weights drawn from the stream (seed, "l2_vs_wd/init"), batches from
(seed, "l2_vs_wd/batches")), each built from the catalogue's own parts
(``regbench.optim.build_optimizer``, the ``reg=[l2]`` penalty with ``params: all``):

- ``sgd_identity``: SGD (momentum 0.9) with weight_decay 2s vs SGD + L2 penalty s sum w^2:
  max |w_a - w_b| / max |w| < 1e-10 (float64 rounding, ~1e-16 per step, over 100 steps;
  judged on log10 of the gap: < -10);
- ``adam_identity``: torch's Adam weight_decay is the same coupled L2: < 1e-10;
- ``adamw_differs``: AdamW with the same coefficient is not Adam+L2: > 1e-3 (the check
  can fail: ten million times the identities' tolerance).

**Grid** (conf/experiment/l2_vs_weight_decay.yaml): MLP 2 x [Linear-ReLU] width 128, Adam
betas (0.9, 0.999), cosine over 30 epochs, batch 100, decay on every parameter; learning
rate in {1e-4, 3.16e-4, 1e-3, 3.16e-3, 1e-2} x decay lambda in the same five values, for
Adam+L2 (``optim=adam``, weight_decay = lambda: the gradient gets lambda w) and AdamW
(``optim=adamw`` at weight_decay = lambda / lr, so each step multiplies w by
1 - eta_t lambda: L&H's lambda, scheduled but not scaled by the rate); 6 seeds (the
sign test of a position claim needs 6; the first version ran 5, corrected before any
cpu-scale run).
Selection per seed on validation error (400 held-out samples).

Claims (declared before any run):

- ``best``: err_test(AdamW at its best setting) - err_test(Adam+L2 at its best) < 0,
  paired per seed (L&H fig. 2: AdamW's best error is lower; "at most" as the interval
  entirely at or below 0);
- ``coupling``: per seed and arm, for each rate the decay with the lowest validation
  error, and the least-squares slope of log10(best decay) on log10(rate); the statistic
  is |slope(Adam+L2)| - |slope(AdamW)|, a discrete reading (kind ``position``), in the
  window [m, 2]: m = the slope of a one-step move of the best decay at one end of the
  rate grid, the smallest difference the grid can show (0.2 here), 2 a generous bound;
  judged by the sign test on the seeds in the window (6 seeds at least). If the best
  decay sits at an edge of the decay grid in more than half of an arm's (rate, seed)
  cells, the grid does not bracket the optimum and the claim is INCONCLUSIVE for that
  reason (declared with the claim).

Tiny scale: 600 train samples, width 32, rates {1e-3, 1e-2} x decays {1e-4, 1e-2},
2 epochs, 2 seeds, 20 identity steps.
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from pathlib import Path

import torch

from regbench.report import RunRecord, load_runs, table
from regbench.report.claims import INCONCLUSIVE, Claim, Verdict, judge, paired_by_seed
from regbench.report.markdown import ci_cell
from regbench.report.plots import new_figure, save
from regbench.reproductions import REPRODUCTIONS
from regbench.reproductions.base import Report, Reproduction, grid
from regbench.reproductions.direct import parent_run, run_once
from regbench.reproductions.seed_pairs import PTS, TINY_DATA, he_init_from_stream, slope

GRIDS = {
    "cpu": ([1e-4, 3.16e-4, 1e-3, 3.16e-3, 1e-2], [1e-4, 3.16e-4, 1e-3, 3.16e-3, 1e-2]),
    "tiny": ([1e-3, 1e-2], [1e-4, 1e-2]),
}
STEPS = {"cpu": 100, "tiny": 20}
TINY = [*TINY_DATA, "trainer.max_epochs=2"]
STRENGTH = 5e-4  # s of the identity checks: penalty s sum w^2 <-> weight_decay 2 s
IDENTITY_TOL, DIFFER_MIN = 1e-10, 1e-3
ARMS = {"adam": "Adam + L2", "adamw": "AdamW"}
GRID = "validation errors over the rate x decay grid"  # both claims select on it: related
LH = "Loshchilov & Hutter 2019 (arXiv 1711.05101) fig. 2"
COLUMNS = [
    "arm",
    "seeds",
    "test err % at the best setting (val)",
    "slope of log best decay on log lr, per seed",
    "best decay at a grid edge",
]


def _exact(key: str, text: str, direction: str, threshold: float, why: str, check: str) -> Claim:
    return Claim(
        key=key,
        text=text,
        statistic="log10(max abs(w_a - w_b) / max abs(w)) after the steps, float64",
        direction=direction,
        threshold=math.log10(threshold),
        rationale=why,
        kind="exact",
        role="check",
        role_reason=check,
        digits=1,
    )


IDENTITY = "an identity of the two update rules: it can fail only if the code is wrong"


ROUNDING = "float64 rounding (~1e-16 a step) over the steps"
EXACT = {
    "sgd_identity": _exact(
        "sgd_identity",
        "SGD: weight decay 2s = L2 penalty s sum w^2",
        "below",
        IDENTITY_TOL,
        f"the penalty's gradient is 2s w; {ROUNDING}",
        IDENTITY,
    ),
    "adam_identity": _exact(
        "adam_identity",
        "Adam: its weight_decay is the coupled L2 penalty",
        "below",
        IDENTITY_TOL,
        f"torch.optim.Adam adds wd w to the gradient; {ROUNDING}",
        IDENTITY,
    ),
    "adamw_differs": _exact(
        "adamw_differs",
        "AdamW is not Adam + L2 (the check can fail)",
        "above",
        DIFFER_MIN,
        "L&H 2019 sec. 2: decoupled decay skips Adam's normalization; 1e-3 = 1e7 x the "
        "identities' tolerance",
        "by construction decoupled decay is a different update: a sanity check that the "
        "catalogue's AdamW is not its Adam + L2 (L&H's fig. 2 claims are `best`, `coupling`)",
    ),
}


def coupling_window(lrs: list[float], decays: list[float]) -> tuple[float, float]:
    """(threshold, delta) of the coupling claim: the window [m, 2 x (decay span / rate
    span)], m the slope of a one-grid-step move of the best decay at one rate end."""
    x = [math.log10(v) for v in lrs]
    step = math.log10(decays[1] / decays[0])
    m = abs(slope(x, [0.0] * (len(x) - 1) + [step]))
    top = 2 * math.log10(decays[-1] / decays[0]) / (x[-1] - x[0])
    return (m + top) / 2, (top - m) / 2


def claims(lrs: list[float], decays: list[float]) -> dict[str, Claim]:
    t, d = coupling_window(lrs, decays)
    return {
        "best": Claim(
            key="best",
            text="AdamW's best test error is at most Adam+L2's",
            statistic="err(AdamW, best setting) - err(Adam+L2, best setting), setting chosen "
            "on validation per seed, paired",
            direction="below",
            threshold=0.0,
            rationale=f"{LH}: AdamW reaches the lower best test error",
            min_seeds=5,
            kind="paired",
            curves=(GRID,),
            **PTS,
        ),
        "coupling": Claim(
            key="coupling",
            text="AdamW's best decay is less coupled to the learning rate",
            statistic="abs(slope L2) - abs(slope W), slope of log10 best decay on log10 lr, "
            "per seed",
            direction="within",
            threshold=t,
            delta=d,
            rationale=f"{LH}: Adam+L2's basin diagonal, AdamW's axis-aligned; lower end = "
            "one decay step at one end of the rate grid",
            min_seeds=6,
            kind="position",
            curves=(GRID,),
            digits=2,
        ),
    }


def identity_gaps(seed: int, steps: int, extra: list[str]) -> list:
    """Train the pairs of the exact checks side by side on the same batches; the
    relative parameter gap of each pair after ``steps`` steps."""
    from regbench.config import compose
    from regbench.data import build_data
    from regbench.nn import build_model
    from regbench.optim import build_optimizer
    from regbench.probes.seeding import generator
    from regbench.reg import build_regularizers

    s = STRENGTH
    base = ["experiment=l2_vs_weight_decay", *extra]
    l2 = ["reg=[l2]", f"reg.l2.strength={s}", "reg.l2.params=all", "optim.weight_decay=0"]
    sgd = ["optim=sgd", "optim.momentum=0.9", "optim.lr=0.05"]
    decay = f"optim.weight_decay={2 * s}"
    pairs = {
        "sgd_identity": ([*sgd, decay], [*sgd, *l2]),
        "adam_identity": ([decay], l2),
        "adamw_differs": (["optim=adamw", decay], l2),
    }
    cfg0 = compose(base)
    splits = build_data(cfg0.data, seed)
    x, y = splits.x_train.double(), splits.y_train
    with torch.random.fork_rng(devices=[]):  # the builder's own init is replaced below
        net = build_model(cfg0.model, splits.input_shape, splits.num_classes).double()
    he_init_from_stream(net, seed, "l2_vs_wd/init")
    out = {}
    composed = {}  # adam_identity and adamw_differs share Adam + L2: compose it once
    for key, (a, b) in pairs.items():
        nets, opts, pens = [], [], []
        for over in (a, b):
            if tuple(over) not in composed:
                composed[tuple(over)] = compose([*base, *over])
            cfg = composed[tuple(over)]
            m = copy.deepcopy(net)
            nets.append(m)
            opts.append(build_optimizer(cfg.optim, m))
            pens.append(list(build_regularizers(cfg, splits.num_classes).penalties.values()))
        g = generator(seed, "l2_vs_wd/batches")
        bs = int(cfg0.data.batch_size)
        for step in range(steps):
            idx = torch.randint(0, len(y), (bs,), generator=g)
            for m, opt, pen in zip(nets, opts, pens, strict=True):
                logits = m(x[idx])
                loss = torch.nn.functional.cross_entropy(logits, y[idx])
                loss = loss + sum(p(m, logits, y[idx], step) for p in pen)
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            scale = max(float(p.abs().max()) for p in nets[0].parameters())
            pairs_of = zip(nets[0].parameters(), nets[1].parameters(), strict=True)
            gap = max(float((p - q).abs().max()) for p, q in pairs_of)
        out[f"exact/{key}"] = gap / scale
    return [(steps, out)]


def decay_of(r: RunRecord) -> float:
    """The per-step decay lambda of a grid run: weight_decay (Adam) or weight_decay x lr
    (AdamW), to 3 significant digits (the grid's values)."""
    wd = r.p("optim.weight_decay", float)
    lam = wd * r.p("optim.lr", float) if r.p("optim.name") == "adamw" else wd
    return float(f"{lam:.3g}")


def best_decays(val: dict, lrs: list[float], decays: list[float], arm: str, seed: int) -> list:
    """Per rate, the decay with the lowest validation error (the first of ties)."""
    return [min(decays, key=lambda d: val[(arm, lr, d, seed)]) for lr in lrs]


@REPRODUCTIONS.register("l2_vs_weight_decay")
class L2VsWeightDecay(Reproduction):
    name = "l2_vs_weight_decay"
    title = (
        "Loshchilov & Hutter 2019 (arXiv 1711.05101): L2 = weight decay for SGD (exact); "
        "for Adam they differ, AdamW's best error is at most Adam+L2's and its best decay "
        "is less coupled to the learning rate."
    )
    default_seeds = {"tiny": 2, "cpu": 6}  # the coupling claim is a position: 6 seeds

    axes = {
        "optim.lr": {s: lrs for s, (lrs, _) in GRIDS.items()},
        "optim.weight_decay": {s: decays for s, (_, decays) in GRIDS.items()},
    }
    tiny = TINY

    def train(self, scale: str, seeds: list[int], n_jobs: int) -> str | None:
        """The exact checks (direct runs), the Adam+L2 grid (rate x decay), then one
        AdamW grid per rate (its weight_decay is decay / rate)."""
        experiment = self.experiment_name(scale)
        extra = TINY if scale == "tiny" else []
        with parent_run(experiment, self.name, scale) as pid:
            for seed in seeds:
                params = {"part": "identities", "seed": seed, "steps": STEPS[scale]}
                fit = lambda s=seed: identity_gaps(s, STEPS[scale], extra)  # noqa: E731
                run_once(experiment, pid, f"identities-s{seed}", params, fit, label=self.name)
        base, axes = self.grid(scale)
        name = f"{experiment}-adam"
        results = grid(name, [*base, "optim=adam"], axes, seeds, n_jobs, experiment)
        parent = self.check(results, experiment, scale)
        lrs, decays = GRIDS[scale]
        for lr in lrs:
            wds = {"optim.weight_decay": [float(f"{d / lr:.6g}") for d in decays]}
            point = [*base, "optim=adamw", f"optim.lr={lr}"]
            name = f"{experiment}-adamw-lr{lr:g}"
            results = grid(name, point, wds, seeds, n_jobs, experiment)
            parent = self.check(results, experiment, scale)
        return parent

    def analyse(self, experiment: str, scale: str, out_dir: Path) -> Report:
        runs = load_runs(experiment, key=self._key)
        self.require_runs(runs, experiment)
        ident = [r for r in runs if r.params.get("part") == "identities"]
        trained = [r for r in runs if "optim.name" in r.params]
        verdicts = [
            judge(c, [math.log10(max(r.metrics[f"exact/{k}"], 1e-300)) for r in ident])
            for k, c in EXACT.items()
        ]
        lrs = sorted({r.p("optim.lr", float) for r in trained})
        decays = sorted({decay_of(r) for r in trained})
        val = {self._cell(r): 1 - r.metrics["val/acc"] for r in trained}
        test = {self._cell(r): 1 - r.metrics["test/acc"] for r in trained}
        seeds = sorted({k[3] for k in val})
        cells_of = [(a, lr, d) for a in ARMS for lr in lrs for d in decays]
        full = [s for s in seeds if all((*cell, s) in val for cell in cells_of)]
        c = claims(lrs, decays)
        best = {a: {} for a in ARMS}
        slopes = {a: {} for a in ARMS}
        edge = {a: 0 for a in ARMS}
        x = [math.log10(v) for v in lrs]
        for a in ARMS:
            for s in full:
                cells = [(a, lr, d, s) for lr in lrs for d in decays]
                best[a][s] = test[min(cells, key=val.__getitem__)]
                bd = best_decays(val, lrs, decays, a, s)
                edge[a] += sum(d in (decays[0], decays[-1]) for d in bd)
                slopes[a][s] = slope(x, [math.log10(d) for d in bd]) if len(lrs) > 1 else 0.0
        verdicts.append(judge(c["best"], paired_by_seed(best["adamw"], best["adam"])))
        coupling = [abs(slopes["adam"][s]) - abs(slopes["adamw"][s]) for s in full]
        cells = len(full) * len(lrs)
        at_edge = {a: edge[a] / cells if cells else 0.0 for a in ARMS}
        verdicts.append(self._coupling_verdict(c["coupling"], coupling, at_edge))
        md = [self._text(experiment, ident, trained, full, best, slopes, at_edge)]
        fig = self._figure(val, lrs, decays, full, out_dir)
        return Report.of(md, fig, "rate x decay, Adam+L2 vs AdamW", verdicts)

    @staticmethod
    def _coupling_verdict(claim: Claim, values: list[float], at_edge: dict) -> Verdict:
        """The coupling claim's verdict, INCONCLUSIVE (the declared rule) when an arm's
        best decay sits at an edge of the decay grid in more than half of its cells."""
        v = judge(claim, values)
        if not any(f > 0.5 for f in at_edge.values()):
            return v
        where = ", ".join(f"{100 * f:.0f}% ({ARMS[a]})" for a, f in at_edge.items())
        note = f"best decay at the grid's edge in {where} of (rate, seed) cells: the grid "
        # undecided by the declared rule: no p-value, so it enters Holm's family with p = 1
        return replace(
            v, status=INCONCLUSIVE, note=note + "does not bracket it", p_support=None,
            p_refute=None, seeds_80=None,
        )  # fmt: skip

    @staticmethod
    def _key(r: RunRecord):
        if r.params.get("part") == "identities":
            return ("identities", r.seed)
        return (r.p("optim.name"), r.p("optim.lr", float), decay_of(r), r.seed)

    @staticmethod
    def _cell(r: RunRecord) -> tuple:
        return (r.p("optim.name"), r.p("optim.lr", float), decay_of(r), r.seed)

    @staticmethod
    def _text(experiment, ident, trained, full, best, slopes, at_edge) -> str:
        rows = []
        for a in ARMS:
            err = ci_cell(best[a], 2, 100)
            per_seed = str([round(slopes[a][s], 2) for s in full])
            rows.append([ARMS[a], len(best[a]), err, per_seed, f"{100 * at_edge[a]:.0f}%"])
        gaps = {
            k: max(r.metrics[f"exact/{k}"] for r in ident) if ident else float("nan") for k in EXACT
        }
        head = (
            f"Experiment `{experiment}`: {len(ident)} identity runs, {len(trained)} grid runs, "
            f"{len(full)} seeds with the full grid. Largest relative parameter gaps: "
            + ", ".join(f"{k} {v:.2e}" for k, v in gaps.items())
            + "."
        )
        return head + "\n\n" + table(COLUMNS, rows)

    @staticmethod
    def _figure(val, lrs, decays, seeds, out_dir: Path) -> Path:
        from matplotlib.patches import Rectangle

        xlabels = {
            "adam": "L2 coefficient lambda (gradient + lambda w)",
            "adamw": "decay lambda (w *= 1 - eta_t lambda)",
        }
        fig, axes = new_figure(2, width=4.6, height=4.0)
        for ax, a in zip(axes, ARMS, strict=True):
            grid_err = [
                [100 * sum(val[(a, lr, d, s)] for s in seeds) / max(len(seeds), 1) for d in decays]
                for lr in lrs
            ]
            im = ax.imshow(grid_err, origin="lower", cmap="viridis", aspect="auto")
            for i, row in enumerate(grid_err):  # box: the best decay of each rate (mean)
                j = row.index(min(row))
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=2))
                for j, e in enumerate(row):
                    ax.text(j, i, f"{e:.0f}", ha="center", va="center", fontsize=7,
                            bbox={"fc": "white", "alpha": 0.6, "lw": 0, "pad": 1})  # fmt: skip
            ax.set(xticks=range(len(decays)), xticklabels=[f"{d:.0e}" for d in decays])
            ax.set(yticks=range(len(lrs)), yticklabels=[f"{v:.0e}" for v in lrs])
            ax.set(xlabel=xlabels[a], ylabel="learning rate")
            ax.set_title(f"{ARMS[a]}: val error % (mean over seeds)")
            fig.colorbar(im, ax=ax, shrink=0.8)
        return save(fig, out_dir / "l2_vs_weight_decay.png")

"""Stochastic depth (Huang, Sun, Liu, Sedra, Weinberger, ECCV 2016, arXiv 1603.09382).

Published: ResNet-110 on CIFAR-10, 6.41% -> 5.25% test error with the linear decay rule
p_l = 1 - (l / L)(1 - p_L), p_L = 0.5, and training about 25% faster, because a dropped
block is skipped for the whole mini-batch (expected depth 0.75 L).

CPU scale (conf/experiment/stochastic_depth.yaml, sd_arm/*.yaml): MNIST-1D, residual MLP
with 24 pre-activation blocks [BN-ReLU-Linear] of width 64, SGD lr 0.1 momentum 0.9,
weight decay 1e-4, batch 128, cosine over 30 epochs; arms on the same seeds: ``none``;
``uniform`` (every block survives with 0.740, the linear rule's mean: the same expected
depth, 17.75 blocks); ``linear`` (the rule above). Both stochastic arms skip blocks per
mini-batch (``model.drop_path_mode=batch``).

Claims (declared before the run):

- ``sd_error``: paired per seed, test error none - linear > 0 (Huang et al. table 1).
- ``linear_vs_uniform``: test error uniform - linear > 0 (Huang et al. sec. 4 / fig. 8:
  the linear rule beats uniform survival at the same expected depth, approx.).
- ``deletion``: the popular reading "features move into earlier layers": with the linear
  rule, deleting a late block costs less than deleting an early one. Per seed, Pearson's
  correlation of the block index l with the test-accuracy drop from deleting block l
  (``diag/delete_acc/<l>``, Veit et al. 2016, arXiv 1605.06431) is below 0, and
  ``deletion_vs_none``: that correlation minus the none arm's is below 0 (SD moves it
  more than plain training does).
- ``time_ratio``: training time of the linear arm's model in per-batch mode over the
  same model without stochastic depth (thread CPU time of 100 SGD steps, same batches)
  is within ± 0.1 of its expected compute fraction, FLOPs(stem + head + E[kept blocks])
  / FLOPs(all blocks), counted by torch's FlopCounterMode. The 0.1 allows for per-step
  costs that do not shrink with depth (the optimizer, the loss, Python overhead);
  ``time_sample_mode``: per-sample masks (every branch computed) save nothing, so their
  ratio minus the per-batch ratio is above 0.

Tiny scale: 600 train samples, 6 blocks, 2 epochs, 2 seeds, 20 timed steps: the same code
path, too few seeds to judge (INCONCLUSIVE by construction).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from regbench import streams
from regbench.report import RunRecord, load_runs, mean_ci, table
from regbench.report.claims import Claim, judge, paired_by_seed
from regbench.report.groups import Arms
from regbench.report.markdown import ci_cell
from regbench.report.plots import COLORS, clip_to, curve_band, new_figure, paired_panel, save
from regbench.reproductions import REPRODUCTIONS
from regbench.reproductions.base import Report, Reproduction
from regbench.reproductions.seed_pairs import PTS, by_arm_seed, error_on_test

ARMS = ["none", "uniform", "linear"]
ARM_LABELS = {
    "none": "no stochastic depth",
    "uniform": "uniform survival",
    "linear": "linear decay",
}
ARM_KEY = "+experiment/sd_arm"
TINY = ["data.n_train=600", "data.n_test=200", "model.depth=6", "trainer.max_epochs=2"]
TIMED_STEPS = {"tiny": 20, "cpu": 100}
FOLK = "a popular reading of stochastic depth ('features move into earlier layers'): no paper"


def _claim(key, text, statistic, direction, threshold, rationale, **kw) -> Claim:
    return Claim(key, text, statistic, direction, threshold, rationale, **kw)


CLAIMS = {
    "sd_error": _claim(
        "sd_error",
        "linear-decay SD lowers test error",
        "err(none) - err(linear), per seed",
        "above",
        0.0,
        "Huang et al. 2016 table 1: 6.41% -> 5.25% (ResNet-110, CIFAR-10)",
        kind="paired",
        curves=("linear arm test error",),
        **PTS,
    ),
    "linear_vs_uniform": _claim(
        "linear_vs_uniform",
        "linear decay beats uniform survival",
        "err(uniform) - err(linear), per seed",
        "above",
        0.0,
        "Huang et al. 2016 sec. 4, fig. 8 (approx.)",
        kind="paired",
        curves=("linear arm test error",),
        **PTS,
    ),
    "deletion": _claim(
        "deletion",
        "with SD, deleting a late block costs less than an early one",
        "corr(block index, accuracy drop), linear arm",
        "below",
        0.0,
        "0: no tilt; block deletion as in Veit et al. 2016 (arXiv 1605.06431)",
        role="folk",
        role_reason=FOLK,
        curves=("deletion costs, linear arm",),
    ),
    "deletion_vs_none": _claim(
        "deletion_vs_none",
        "SD tilts deletion costs to early blocks more than plain training",
        "corr(linear) - corr(none), per seed",
        "below",
        0.0,
        "0: the same tilt as plain training (the none arm, same seeds)",
        kind="paired",
        role="folk",
        role_reason=FOLK,
        curves=("deletion costs, linear arm",),
    ),
    "time_ratio": _claim(
        "time_ratio",
        "per-batch SD trains in its expected compute fraction",
        "time(linear, batch mode) / time(no SD) - expected fraction",
        "within",
        0.0,
        "Huang et al. 2016: ~25% faster at 0.75 L expected "
        "depth; ±0.1 for per-step costs that do not scale with depth, this project's, "
        "fixed in commit 50a39c6 (docs/REPRODUCTIONS.md section 16)",
        delta=0.1,
        curves=("per-batch time ratio",),
    ),
    "time_sample_mode": _claim(
        "time_sample_mode",
        "per-sample masks save no time",
        "ratio(sample mode) - ratio(batch mode), per seed",
        "above",
        0.0,
        "per-sample masks still compute every branch",
        kind="paired",
        role="check",
        role_reason="by construction: per-sample mode runs every branch; it checks the "
        "timing harness sees that",
        curves=("per-batch time ratio",),
    ),
}


def _corr(xs: list[float], ys: list[float]) -> float:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx, syy = sum((x - mx) ** 2 for x in xs), sum((y - my) ** 2 for y in ys)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else 0.0


def deletion_drops(r: RunRecord) -> list[float]:
    """Test-accuracy drop from deleting block l = 1..L (diag/test_acc - delete_acc)."""
    n = sum(1 for k in r.metrics if k.startswith("diag/delete_acc/"))
    return [r.metrics["diag/test_acc"] - r.metrics[f"diag/delete_acc/{i}"] for i in range(1, n + 1)]


def time_steps(overrides: list[str], seed: int, steps: int) -> dict[str, float]:
    """Thread CPU seconds of ``steps`` SGD steps for the model without SD, with the linear
    rule per sample and per batch (same init, same batches), and the expected compute
    fraction of per-batch mode from FLOP counts."""
    out: dict[str, float] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # every op on this thread, so thread_time sees all of it
    try:
        _time_arms(overrides, seed, steps, out)
    finally:
        torch.set_num_threads(threads)
    return out


def _time_arms(overrides: list[str], seed: int, steps: int, out: dict[str, float]) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    from regbench.config import compose
    from regbench.nn import build_model

    x = torch.randn(steps, 128, 40, generator=torch.Generator().manual_seed(seed))
    y = torch.randint(0, 10, (steps, 128), generator=torch.Generator().manual_seed(seed))
    for arm, extra in [
        ("none", ["+experiment/sd_arm=none"]),
        ("sample", ["+experiment/sd_arm=linear", "model.drop_path_mode=sample"]),
        ("batch", ["+experiment/sd_arm=linear"]),
    ]:
        cfg = compose(["experiment=stochastic_depth", *overrides, *extra, f"seed={seed}"])
        # the run's own streams, as train.build binds them (docs/ARCHITECTURE.md, "Randomness")
        root, clock = streams.Stream.of_run(seed), streams.Clock()
        with streams.seeded(root.child("init")):
            model = build_model(cfg.model, (40,), 10).train()
        streams.bind_model(model, root.child("layer"), clock)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        t0 = time.thread_time()
        for i in range(steps):
            with clock.at(streams.TRAIN, i):
                opt.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(model(x[i]), y[i]).backward()
                opt.step()
        out[f"time/{arm}_s"] = time.thread_time() - t0
        if arm == "none":  # expected fraction: (base + sum p_l * block) / (base + L * block)
            with FlopCounterMode(display=False) as fc:
                torch.nn.functional.cross_entropy(model(x[0]), y[0]).backward()
            full = fc.get_total_flops()
            for b in model.blocks:
                b.deleted = True
            with FlopCounterMode(display=False) as fc:
                torch.nn.functional.cross_entropy(model(x[0]), y[0]).backward()
            base, depth = fc.get_total_flops(), len(model.blocks)
    from regbench.reg.depth import linear_decay_survival

    ps = linear_decay_survival(depth, cfg.model.survival_last)  # the batch arm's rule
    out["time/expected_fraction"] = (base + sum(ps) * (full - base) / depth) / full


@REPRODUCTIONS.register("stochastic_depth")
class StochasticDepth(Reproduction):
    name = "stochastic_depth"
    title = (
        "Huang et al. 2016 (arXiv 1603.09382): stochastic depth (linear decay) lowers test "
        "error; skipping whole blocks per mini-batch cuts training time to the expected depth."
    )
    default_seeds = {"tiny": 2, "cpu": 4}
    arms = Arms("sd_arm", ARM_LABELS, baseline="none")

    axes = {ARM_KEY: ARMS}
    tiny = TINY

    def train(self, scale: str, seeds: list[int], n_jobs: int) -> str | None:
        parent = super().train(scale, seeds, n_jobs)
        from regbench.reproductions.direct import parent_run, run_once

        model_overrides = [o for o in TINY if o.startswith("model.")] if scale == "tiny" else []
        experiment = self.experiment_name(scale)
        with parent_run(experiment, self.name, scale) as pid:
            for s in seeds:
                params = {
                    "kind": "timing",
                    "seed": s,
                    "steps": TIMED_STEPS[scale],
                    "overrides": " ".join(model_overrides),
                }
                run_once(
                    experiment,
                    pid,
                    f"timing-s{s}",
                    params,
                    lambda s=s: [(0, time_steps(model_overrides, s, TIMED_STEPS[scale]))],
                    label=self.name,
                )
        return parent

    def analyse(self, experiment: str, scale: str, out_dir: Path) -> Report:
        runs = load_runs(experiment, key=lambda r: (r.params.get("sd_arm", "timing"), r.seed))
        arms = [r for r in runs if "sd_arm" in r.params]
        timing = {r.seed: r.metrics for r in runs if r.params.get("kind") == "timing"}
        self.require_runs(arms, experiment)
        err = by_arm_seed(arms, lambda r: r.p("sd_arm"), error_on_test, ARMS)
        drops = {a: {r.seed: deletion_drops(r) for r in arms if r.p("sd_arm") == a} for a in ARMS}
        corr = {
            a: {s: _corr(list(range(1, len(d) + 1)), d) for s, d in drops[a].items()} for a in ARMS
        }
        ratio = {s: m["time/batch_s"] / m["time/none_s"] for s, m in timing.items()}
        ratio_sample = {s: m["time/sample_s"] / m["time/none_s"] for s, m in timing.items()}
        gap = [ratio[s] - timing[s]["time/expected_fraction"] for s in sorted(timing)]
        verdicts = [
            judge(CLAIMS["sd_error"], paired_by_seed(err["none"], err["linear"])),
            judge(CLAIMS["linear_vs_uniform"], paired_by_seed(err["uniform"], err["linear"])),
            judge(CLAIMS["deletion"], [corr["linear"][s] for s in sorted(corr["linear"])]),
            judge(CLAIMS["deletion_vs_none"], paired_by_seed(corr["linear"], corr["none"])),
            judge(CLAIMS["time_ratio"], gap),
            judge(CLAIMS["time_sample_mode"], paired_by_seed(ratio_sample, ratio)),
        ]
        rows = [
            [a, len(err[a]), ci_cell(err[a], 2, 100), ci_cell(corr[a], 2)] for a in ARMS if err[a]
        ]
        md = [
            f"Experiment `{experiment}`, {len(arms)} training runs and {len(timing)} timing "
            "runs; mean ± 95% t-interval over seeds.",
            table(["arm", "seeds", "test err %", "corr(block, deletion drop)"], rows),
        ]
        if timing:
            exp = mean_ci([m["time/expected_fraction"] for m in timing.values()])
            md.append(
                "Timing (thread CPU time, same batches): per-batch / no SD "
                f"{mean_ci(list(ratio.values())).fmt(3)}, per-sample / no SD "
                f"{mean_ci(list(ratio_sample.values())).fmt(3)}, expected compute fraction "
                f"{exp.mean:.3f} (Huang et al.: about 0.75 for ResNet-110)."
            )
        fig = self._figure(err, drops, out_dir)
        return Report.of(md, fig, "stochastic depth", verdicts)

    @staticmethod
    def _figure(err, drops, out_dir: Path) -> Path:
        fig, (ax, ax2) = new_figure(2, width=5.0, height=3.8)
        paired_panel(ax, err, ARMS, [ARM_LABELS[a].replace(" ", "\n", 1) for a in ARMS])
        ax.set(ylabel="test error (%)", title="Test error per seed (lines pair seeds)")
        for i, a in enumerate(ARMS):
            per_seed = list(drops[a].values())
            if per_seed and all(per_seed):
                n = min(len(d) for d in per_seed)
                pts = [[100 * v for v in d[:n]] for d in per_seed]  # accuracy points
                curve_band(ax2, list(range(1, n + 1)), pts, ARM_LABELS[a], COLORS[i])
        clip_to(ax, 0, 100)
        clip_to(ax2, -100, 100)  # a drop in accuracy points
        ax2.set(
            xlabel="deleted block l",
            ylabel="test accuracy drop (points)",
            title="Deleting one block at test time",
        )
        ax2.legend(fontsize=7)
        return save(fig, out_dir / "stochastic_depth.png")

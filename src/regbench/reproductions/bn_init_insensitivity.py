"""Batch norm makes training insensitive to initialization (Ioffe & Szegedy 2015, arXiv
1502.03167: BN "allows us to use much higher learning rates and be less careful about
initialization"; sec. 3.3: a BN layer's output does not change when the weights before
it are scaled, BN(aWu) = BN(Wu)).

A plain ReLU net of depth L multiplies its logits by s^L when every weight is scaled by
s, so a mis-scaled init either explodes or vanishes; with BN after every hidden layer only
the head sees the scale, and the gradient of a scaled layer shrinks by 1/s (its
effective step by 1/s^2), so the scale changes the speed of training, not the function.

CPU scale (conf/experiment/bn_init_insensitivity.yaml): MNIST-1D, 10 x [Linear-(BN)-ReLU]
width 128, He init times ``model.init_scale`` s in {0.25, 0.5, 1, 2, 4} (every weight,
head included), SGD momentum 0.9 at a constant rate 0.01, batch 100, 20 epochs; grid
``model.norm`` in {none, batch} x s, 5 seeds shared by every point. A run whose loss
becomes non-finite fails (as any diverging run); it counts as chance error, 90%.

Claims (declared before any run):

- ``less_spread``: the standard deviation over the five scales of the test error is
  larger without BN than with it, paired per seed (Ioffe & Szegedy, abstract);
- ``bn_flat``: with BN the range (max - min) of the test error over the scales is below
  the expected range of five independent test-set draws of a 32% error, d2(5) x s.e. =
  2.326 x 1.475 = 3.43 points (the folk "insensitive": no more spread than re-drawing
  the test set would give; d2 the mean range of n normal draws in sd units);
- ``invariance`` (exact check): at initialization, in training mode (batch statistics),
  the BN net's features before the head for scale s agree with those for s = 1 within
  1e-2 (relative, max over the test set), for every s: per BN layer the normalized output
  moves by eps / (2 var) |1 - 1/s^2| <= 7.5e-5 at s = 0.25 and var near 1 (He init keeps
  it so), about 1e-3 over 10 layers; 1e-2 leaves room for var down to 0.1. Computed from
  the runs' own model and data config (its test inputs), weights from the stream (0,
  "bn_init/check").

Tiny scale: 600 train samples, width 32, depth 4, scales {0.5, 2}, 2 epochs, 2 seeds.
"""

from __future__ import annotations

import copy
import math
import statistics
from pathlib import Path

import torch

from regbench.report import table
from regbench.report.claims import Claim, judge, paired_by_seed
from regbench.report.markdown import ci_cell
from regbench.report.plots import arm_bands, log_ticks, new_figure, paired_panel, save
from regbench.reproductions import REPRODUCTIONS
from regbench.reproductions.base import Report, Reproduction
from regbench.reproductions.divergence import diverged_runs, train_allowing_divergence
from regbench.reproductions.seed_pairs import (
    CHANCE_ERR,
    PTS,
    TEST_SE,
    TINY_DATA,
    he_init_from_stream,
)

NORMS = ["none", "batch"]
LABELS = {"none": "no BN", "batch": "BN"}
SCALES = {"cpu": [0.25, 0.5, 1.0, 2.0, 4.0], "tiny": [0.5, 2.0]}
TINY = [*TINY_DATA, "model.depth=4", "trainer.max_epochs=2"]
#: mean range of n independent standard normal draws (Tippett 1925; d2 of SPC tables)
D2 = {2: 1.128, 3: 1.693, 4: 2.059, 5: 2.326}
INVARIANCE_TOL = 1e-2
IOFFE = "Ioffe & Szegedy 2015 (arXiv 1502.03167), abstract: 'less careful about initialization'"
BN_ERR = "BN's test error over the init scales"  # both random claims read it: related


def claims(n_scales: int) -> dict[str, Claim]:
    flat = D2[n_scales] * TEST_SE
    return {
        "less_spread": Claim(
            key="less_spread",
            text="test error varies less over init scales with BN",
            statistic="sd over scales of test error, no BN - BN, paired per seed",
            direction="above",
            threshold=0.0,
            rationale=IOFFE,
            min_seeds=5,
            kind="paired",
            curves=(BN_ERR,),
            **PTS,
        ),
        "bn_flat": Claim(
            key="bn_flat",
            text="with BN the test error is flat over init scales",
            statistic="max - min over scales of BN's test error, per seed",
            direction="below",
            threshold=flat,
            rationale=f"folk 'insensitive': below the mean range of {n_scales} test-set draws "
            f"of a 32% error, d2({n_scales}) x 1.475 pts (MNIST-1D authors' MLP: 68%)",
            min_seeds=5,
            role="folk",
            role_reason="the popular 'BN makes training insensitive to init', stronger than "
            "Ioffe & Szegedy's 'less careful': no more spread than a new test set would give",
            curves=(BN_ERR,),
            **PTS,
        ),
        "invariance": Claim(
            key="invariance",
            text="at init, BN features do not change with the weights' scale",
            statistic="log10 max relative difference of pre-head features, scale s vs 1",
            direction="below",
            threshold=math.log10(INVARIANCE_TOL),
            rationale="Ioffe & Szegedy sec. 3.3; tolerance: eps / (2 var) x abs(1 - 1/s^2) per "
            "layer (module docstring)",
            kind="exact",
            role="check",
            role_reason="an identity of BN (the scale before it cancels up to eps): it tests "
            "the code and the init_scale knob, not training",
            digits=1,
        ),
    }


@torch.no_grad()
def feature_gaps(cfg, scales: list[float]) -> dict[float, float]:
    """Relative max difference of the features before the head, scale s vs 1, at init,
    train mode (batch statistics), float64, on the test inputs of ``cfg.data``, for the
    net of ``cfg.model`` (its own init_scale replaced by s and 1)."""
    from regbench.data import build_data
    from regbench.nn import build_model
    from regbench.nn.init import scale_init

    data = build_data(cfg.data, 0)
    with torch.random.fork_rng(devices=[]):  # the builder's init is replaced below
        base = build_model(cfg.model, data.input_shape, data.num_classes).double()
    he_init_from_stream(base, 0, "bn_init/check")
    x = data.x_test.double()

    def features(m):
        return m.train().blocks(m.flatten(x))  # (N, width), batch statistics

    ref = features(copy.deepcopy(base))
    out = {}
    for s in scales:
        m = copy.deepcopy(base)
        scale_init(m, s)
        out[s] = float((features(m) - ref).abs().max() / ref.abs().max())
    return out


@REPRODUCTIONS.register("bn_init_insensitivity")
class BnInitInsensitivity(Reproduction):
    name = "bn_init_insensitivity"
    title = (
        "Ioffe & Szegedy 2015 (arXiv 1502.03167): with batch norm a deep ReLU net's trained "
        "test error varies less over init scales (He init x 0.25 .. 4) than without."
    )
    default_seeds = {"tiny": 2, "cpu": 5}

    axes = {"model.norm": NORMS, "model.init_scale": SCALES}
    tiny = TINY

    def train(self, scale: str, seeds: list[int], n_jobs: int) -> str | None:
        """As the base class, but a diverged run is a result here (chance error)."""
        return train_allowing_divergence(self, scale, seeds, n_jobs, "chance error")

    def analyse(self, experiment: str, scale: str, out_dir: Path) -> Report:
        point = lambda r: (r.p("model.norm"), r.p("model.init_scale", float))  # noqa: E731
        runs = self.finished_runs(experiment, point)
        key = lambda r: (*point(r), r.seed)  # noqa: E731
        err = {key(r): 1 - r.metrics["test/acc"] for r in runs}
        diverged = {key(r) for r in diverged_runs(experiment)} - set(err)
        err.update({k: CHANCE_ERR for k in diverged})
        scales = sorted({k[1] for k in err})
        points = [(n, s) for n in NORMS for s in scales]
        seeds = sorted({k[2] for k in err if all((*p, k[2]) in err for p in points)})
        spread = {
            n: {sd: statistics.stdev([err[(n, s, sd)] for s in scales]) for sd in seeds}
            for n in NORMS
        }
        bn = {sd: [err[("batch", s, sd)] for s in scales] for sd in seeds}
        width = {sd: max(v) - min(v) for sd, v in bn.items()}
        c = claims(len(scales))
        bn_run = next(r for r in runs if r.p("model.norm") == "batch")
        gaps = feature_gaps(self._config(bn_run), [s for s in scales if s != 1.0])
        verdicts = [
            judge(c["less_spread"], paired_by_seed(spread["none"], spread["batch"])),
            judge(c["bn_flat"], list(width.values())),
            judge(c["invariance"], [math.log10(max(g, 1e-300)) for g in gaps.values()]),
        ]
        rows = []
        for n in NORMS:
            for s in scales:
                vals = [err[(n, s, sd)] for sd in seeds if (n, s, sd) in err]
                div = sum((n, s, sd) in diverged for sd in seeds)
                rows.append([LABELS[n], f"{s:g}", len(vals), ci_cell(vals, 2, 100), div])
        md = [
            f"Experiment `{experiment}`, {len(runs)} finished runs, {len(diverged)} diverged "
            f"(counted at {100 * CHANCE_ERR:.0f}% error); {len(seeds)} seeds with every "
            "point. Mean ± 95% t-interval over seeds.",
            table(["norm", "init scale", "seeds", "test err %", "diverged"], rows),
            "At init, BN features for scale s vs 1 (relative): "
            + ", ".join(f"s={s:g}: {g:.1e}" for s, g in gaps.items())
            + ".",
        ]
        fig = self._figure(err, scales, seeds, spread, out_dir)
        return Report.of(md, fig, "BN and init scale", verdicts)

    @staticmethod
    def _config(run):
        """A BN run's resolved config at init scale 1 (its model and data)."""
        from regbench.tracking.artifacts import load_config

        cfg = load_config(run.run_id)
        cfg.model.init_scale = 1.0
        return cfg

    @staticmethod
    def _figure(err, scales, seeds, spread, out_dir: Path) -> Path:
        fig, (ax, ax2) = new_figure(2, width=5.0, height=3.8)
        complete = {(n, s): {sd: err[(n, s, sd)] for sd in seeds} for n in NORMS for s in scales}
        arm_bands(ax, complete, NORMS, [LABELS[n] for n in NORMS], 100)
        log_ticks(ax, scales)
        title = "Test error after training"
        ax.set(xlabel="init scale (x He std)", ylabel="test error (%)", title=title)
        ax.legend(fontsize=7)
        paired_panel(ax2, spread, NORMS, [LABELS[n] for n in NORMS])
        ax2.set(ylabel="sd of test error over scales (pts)", title="Spread over init scales")
        return save(fig, out_dir / "bn_init_insensitivity.png")

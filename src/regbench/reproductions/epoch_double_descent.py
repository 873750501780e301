"""Epoch-wise double descent (Nakkiran et al. 2019, arXiv 1912.02292) through its
mechanism: features learned at different speeds (Pezeshki et al., ICML 2022, arXiv
2112.03215; Heckel & Yilmaz, ICLR 2021, arXiv 2007.10099).

CPU scale: the linear teacher-student of :mod:`teacher_student`, all data draws in one
LightningModule, one MLflow child run per arm: ``equal`` step sizes (test error falls,
rises to a peak, falls again) and ``fast_reduced`` (the fast features' step scaled by
1/kappa, so both feature groups learn at the same speed: no bump). The same for the
two-layer ReLU network of :mod:`two_layer` (Heckel & Yilmaz's per-layer mechanism):
``two_layer_equal`` (one step size for both layers; the output layer is the fast one) and
``two_layer_fast_reduced`` (the output layer's step reduced). Metrics are recorded at
log-spaced steps. Paper scale: ResNet-18 k=64 on CIFAR-10 with 20% label noise through
the grid machinery, val error per epoch.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from regbench.report import REPRO_TAG, Summary, Verdict, history, load_runs, mean_ci, table
from regbench.report.plots import COLORS, band, new_figure, save
from regbench.reproductions import REPRODUCTIONS
from regbench.reproductions.base import Report, Reproduction
from regbench.reproductions.direct import finished, run_once

KEY_TAG = "edd.key"  # the resume key's tag (kept from earlier stores)

LABELS = {"equal": "equal step sizes", "fast_reduced": "fast features' step x 1/kappa"}
TWO_LAYER_LABELS = {
    "two_layer_equal": "equal step sizes",
    "two_layer_fast_reduced": "fast (output) layer's step reduced",
}
# Pezeshki et al.'s curve as seen on this setup (REPRODUCTIONS.md, 20 draws, approx.).
PUBLISHED = "0.66 at t=1 -> 0.49 at t~7 -> peak 0.63 at t~160 -> 0.38 at 2e4 -> 0.10 at 1e5"
FLAT = 0.01  # "no bump": the error never rises more than this above its running minimum
# Heckel & Yilmaz's two-layer claim is qualitative (their two-layer section): with one step
# size the risk shows a bump that the reduced step of the faster layer removes.
PUBLISHED_TWO_LAYER = "a bump with equal step sizes that reducing the faster layer's step removes"


def bump(curve: list[float]) -> tuple[int, int, float]:
    """(index of the minimum before the peak, index of the peak, rise) maximising the
    rise of the curve above its running minimum."""
    best, run_min = (0, 0, 0.0), 0
    for j, v in enumerate(curve):
        if v < curve[run_min]:
            run_min = j
        if v - curve[run_min] > best[2]:
            best = (run_min, j, v - curve[run_min])
    return best


def curves_of(run_id: str, draws: int) -> tuple[list[int], list[list[float]]]:
    """Steps and per-draw test-error curves of one arm's run."""
    per = [history(run_id, f"draw/{b}/test_err") for b in range(draws)]
    steps = [s for s, _ in per[0]]
    return steps, [[v for _, v in h] for h in per]


@REPRODUCTIONS.register("epoch_double_descent")
class EpochDoubleDescent(Reproduction):
    name = "epoch_double_descent"
    title = (
        "Epoch-wise double descent (Nakkiran et al. 2019) from features learned at "
        "different speeds (Pezeshki et al. 2022; Heckel & Yilmaz 2021): test error falls, "
        "rises to a peak, falls again; equalising the speeds (reducing the fast part's "
        "step size) removes the bump."
    )
    default_seeds = {"cpu": 1, "paper": 1}
    edd_overrides: list[str] = []  # e.g. ["edd.steps=200"] (tests)

    def grid(self, scale: str) -> tuple[list[str], dict[str, list]]:
        return ["experiment=epoch_double_descent_paper"], {"data.label_noise": [0.2]}

    def train(self, scale: str, seeds: list[int], n_jobs: int) -> str | None:
        if scale != "cpu":
            return super().train(scale, seeds, n_jobs)
        from regbench import tracking
        from regbench.config import compose
        from regbench.reproductions.teacher_student import make_draws, train

        cfg = compose(["experiment=epoch_double_descent", *self.edd_overrides]).edd
        experiment = self.experiment_name(scale)
        client = tracking.get_client()
        exp_id = tracking.ensure_experiment(client, experiment)
        with tracking.tracked_run(
            experiment, f"{self.name}-grid", tags={REPRO_TAG: self.name, "regbench.scale": scale}
        ) as parent:
            for seed in seeds:
                data = make_draws(
                    cfg.draws, cfg.n, cfg.d, cfg.fast_dims, cfg.kappa, cfg.noise, seed
                )
                linear = OmegaConf.to_container(cfg)
                linear.pop("two_layer", None)  # the linear arms' params (and keys) as before
                for arm in cfg.arms:
                    params = {**linear, "arm": arm, "seed": seed}
                    params.pop("arms")
                    scale_fast = cfg.fast_lr_scale if arm == "fast_reduced" else 1.0
                    self._run_arm(
                        client,
                        exp_id,
                        experiment,
                        parent.run_id,
                        f"teacher_student-{arm}-s{seed}",
                        params,
                        lambda s=scale_fast, d=data: train(
                            d, cfg.fast_dims, s, cfg.steps, cfg.n_log
                        ),
                    )
                self._train_two_layer(client, exp_id, experiment, parent.run_id, cfg, seed)
            return parent.run_id

    def _train_two_layer(self, client, exp_id, experiment, parent_id, cfg, seed: int) -> None:
        import torch

        from regbench.reproductions import two_layer

        tl = cfg.two_layer
        data = None  # drawn only when an arm still has to run
        for arm in tl.arms:
            params = {**OmegaConf.to_container(tl), "model": "two_layer", "arm": arm, "seed": seed}
            params.pop("arms")
            if data is None and not finished(experiment, params, KEY_TAG):
                data = two_layer.make_draws(
                    tl.draws,
                    tl.n,
                    tl.d,
                    tl.hidden,
                    tl.directions,
                    tl.noise,
                    tl.w_scale,
                    tl.v_scale,
                    tl.n_test,
                    seed,
                    getattr(torch, tl.dtype),
                )
            scale_v = tl.fast_lr_scale if arm == "two_layer_fast_reduced" else 1.0
            self._run_arm(
                client,
                exp_id,
                experiment,
                parent_id,
                f"{arm}-s{seed}",
                params,
                lambda s=scale_v, d=data: two_layer.train(d, tl.lr, 1.0, s, tl.steps, tl.n_log),
            )

    def _run_arm(self, client, exp_id, experiment, parent_id, run_name, params, fit) -> None:
        run_once(experiment, parent_id, run_name, params, fit, key_tag=KEY_TAG, label=self.name)

    def analyse(self, experiment: str, scale: str, out_dir: Path) -> Report:
        if scale != "cpu":
            return self._analyse_paper(experiment, out_dir)
        runs = load_runs(experiment, key=lambda r: (r.p("arm"), r.seed))
        if not runs:
            raise SystemExit(
                f"no finished runs in experiment {experiment!r}; run "
                f"`regbench reproduce {self.name}` first"
            )
        arms = self._arm_curves(runs, LABELS)
        two = self._arm_curves(runs, TWO_LAYER_LABELS)
        md, verdicts = [], []
        if arms:
            lin = next(r for r in runs if r.p("arm") in LABELS)
            n_draws = len(next(iter(arms.values()))[2])
            md += [
                f"Experiment `{experiment}`: linear teacher-student (n={lin.p('n')}, "
                f"d={lin.p('d')}, {lin.p('fast_dims')} fast dims, variance ratio "
                f"{lin.p('kappa', float):g}), full-batch GD with step 1/lambda_max, "
                f"{n_draws} data draws; population test error, mean ± 95% t-interval over "
                "draws.",
                self._table(arms, LABELS),
                f"Published shape (Pezeshki et al. 2022; REPRODUCTIONS.md): {PUBLISHED}.",
            ]
            verdicts += self._verdicts(arms)
        if two:
            r = next(r for r in runs if r.p("arm") in TWO_LAYER_LABELS)
            n_draws = len(next(iter(two.values()))[2])
            md += [
                f"Two-layer ReLU network (Heckel & Yilmaz 2021), f(x) = v . relu(W x) / sqrt(k): "
                f"n={r.p('n')}, d={r.p('d')}, k={r.p('hidden')} hidden units whose first-layer "
                f"init rows take {r.p('directions')} distinct random directions, linear "
                f"teacher with label noise std {r.p('noise', float):g}, init scales "
                f"{r.p('w_scale', float):.3g} (first layer) and {r.p('v_scale', float):.3g} "
                "(output layer), so that with one step size the output layer is the fast one; "
                f"full-batch GD with step {r.p('lr', float):g}/lambda_max of the tangent kernel "
                f"at init, the reduced arm scales the output layer's step by "
                f"{r.p('fast_lr_scale', float):g}. {n_draws} data draws (each with its own "
                f"init, shared by the two arms); test MSE on {r.p('n_test')} fresh inputs "
                "against the noise-free teacher, mean ± 95% t-interval over draws.",
                self._table(two, TWO_LAYER_LABELS),
                f"Published (Heckel & Yilmaz 2021, two-layer network; qualitative): "
                f"{PUBLISHED_TWO_LAYER}.",
            ]
            verdicts += self._two_layer_verdicts(two)
        figures = [self._figure(arms, two, out_dir)]
        md.append(f"![epoch-wise double descent]({figures[0].name})")
        return Report("\n\n".join(md), verdicts, figures)

    @staticmethod
    def _arm_curves(runs, labels) -> dict[str, tuple[list[int], list[Summary], list[list[float]]]]:
        """Per arm in ``labels``: steps, mean ± CI per step, per-draw curves."""
        arms = {}
        for arm in labels:
            rs = [r for r in runs if r.p("arm") == arm]
            if not rs:
                continue
            curves, steps = [], []
            for r in rs:  # every seed's draws pooled: each draw is an independent replicate
                steps, cs = curves_of(r.run_id, r.p("draws", int))
                curves += cs
            arms[arm] = (steps, [mean_ci(col) for col in zip(*curves, strict=True)], curves)
        return arms

    @staticmethod
    def _table(arms, labels) -> str:
        steps = next(iter(arms.values()))[0]
        show = [i for i, s in enumerate(steps) if i % 3 == 0 or i == len(steps) - 1]
        rows = [[steps[i], *[arms[a][1][i].fmt(3) for a in arms]] for i in show]
        return table(["step", *[labels[a] for a in arms]], rows)

    @staticmethod
    def _double_descent(claim: str, steps, mean, curves) -> Verdict:
        """Falls to a minimum, rises to a peak (per-draw rise CI excludes 0), falls again
        below the peak (per-draw drop CI excludes 0)."""
        i, j, h = bump([s.mean for s in mean])
        # per-draw rise between the same two steps: its CI must exclude 0
        rise = mean_ci([c[j] - c[i] for c in curves])
        after = min(range(j, len(mean)), key=lambda k: mean[k].mean)
        drop = mean_ci([c[j] - c[after] for c in curves])
        return Verdict(
            claim,
            i > 0 and rise.lo > 0 and drop.lo > 0 and after > j,
            f"start {mean[0].fmt(3)}, min {mean[i].fmt(3)} at t={steps[i]}, peak "
            f"{mean[j].fmt(3)} at t={steps[j]} (rise {rise.fmt(3)}), then "
            f"{mean[after].fmt(3)} at t={steps[after]} (drop {drop.fmt(3)})",
        )

    @staticmethod
    def _no_bump(claim: str, steps, mean, mean_equal) -> Verdict:
        i, j, h = bump([s.mean for s in mean])
        h_eq = bump([s.mean for s in mean_equal])[2]
        return Verdict(
            claim,
            h <= FLAT,
            f"largest rise {h:.4f} (equal steps: {h_eq:.3f}); error {mean[0].mean:.3f} at "
            f"t={steps[0]} -> {mean[-1].fmt(3)} at t={steps[-1]}",
        )

    @classmethod
    def _pair_verdicts(cls, arms, equal: str, reduced: str, model: str, fast: str):
        """The two claims of a mechanism: double descent with equal step sizes; no bump
        with the fast part's step reduced."""
        out = []
        if equal in arms:
            out.append(
                cls._double_descent(
                    f"{model}equal step sizes: test error falls to a minimum, rises to a peak "
                    "above it, then falls again below the peak",
                    *arms[equal],
                )
            )
        if reduced in arms and equal in arms:
            steps, mean, _ = arms[reduced]
            out.append(
                cls._no_bump(
                    f"{model}{fast} step reduced: the bump disappears (rise above the running "
                    f"minimum <= {FLAT})",
                    steps,
                    mean,
                    arms[equal][1],
                )
            )
        return out

    @classmethod
    def _verdicts(cls, arms) -> list[Verdict]:
        return cls._pair_verdicts(arms, "equal", "fast_reduced", "", "fast features'")

    @classmethod
    def _two_layer_verdicts(cls, arms) -> list[Verdict]:
        return cls._pair_verdicts(
            arms, "two_layer_equal", "two_layer_fast_reduced", "two-layer net, ",
            "fast (output) layer's",
        )  # fmt: skip

    @staticmethod
    def _figure(arms, two, out_dir: Path) -> Path:
        panels = [
            (arms, LABELS, "linear teacher-student", "test error (population MSE)"),
            (two, TWO_LAYER_LABELS, "two-layer ReLU net (Heckel & Yilmaz)", "test error (MSE)"),
        ]
        panels = [p for p in panels if p[0]]
        fig, axes = new_figure(len(panels), width=6.0, height=4.0)
        for ax, (curves, labels, title, ylabel) in zip(axes, panels, strict=True):
            for k, (arm, (steps, mean, _)) in enumerate(curves.items()):
                band(ax, steps, mean, labels[arm], COLORS[k], marker=".")
            ax.set(
                xscale="log",
                xlabel="gradient step t",
                ylabel=ylabel,
                title=f"Epoch-wise double descent: {title}",
            )
            ax.legend(fontsize=8)
        return save(fig, out_dir / "epoch_double_descent.png")

    def _analyse_paper(self, experiment: str, out_dir: Path) -> Report:
        runs = load_runs(experiment, key=lambda r: r.seed)
        curves = [[1 - v for _, v in history(r.run_id, "val/acc")] for r in runs]
        n = min(len(c) for c in curves)
        mean = [mean_ci([c[t] for c in curves]) for t in range(n)]
        fig, (ax,) = new_figure(1, width=6.0, height=4.0)
        band(ax, list(range(1, n + 1)), mean, "ResNet-18 k=64, 20% noise", COLORS[0], marker=".")
        ax.set(xscale="log", xlabel="epoch", ylabel="val error", title="Epoch-wise double descent")
        path = save(fig, out_dir / "epoch_double_descent.png")
        i, j, h = bump([s.mean for s in mean])
        after = min(range(j, n), key=lambda k: mean[k].mean) if n else 0
        ok = n > 0 and h > 0 and mean[after].mean < mean[j].mean
        v = Verdict(
            "val error falls, rises, falls again",
            ok,
            f"min {mean[i].mean:.3f} at epoch {i + 1}, peak {mean[j].mean:.3f} at "
            f"{j + 1}, then {mean[after].mean:.3f} at {after + 1}"
            if n
            else "no runs",
        )
        return Report(
            f"Experiment `{experiment}`, {len(runs)} runs.\n\n![curve]({path.name})", [v], [path]
        )

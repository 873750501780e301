"""Model-wise double descent (Nakkiran et al. 2019, arXiv 1912.02292).

Test error over model width has an interior peak near the interpolation threshold (the
smallest width whose train error on the noisy labels reaches 0), above the preceding
minimum; with no label noise the peak shrinks. CPU scale follows the MNIST-1D authors
(Greydanus & Kobak 2020, arXiv 2011.14439): a 2-hidden-layer MLP over 20 widths.

Train error on the (noisy) training labels is ``1 - diag/train_acc_evalmode``, measured
by ``regbench.diagnostics`` over the whole train set in eval mode after training.
"""

from __future__ import annotations

from pathlib import Path

from regbench.report import RunRecord, Summary, Verdict, load_runs, mean_ci, table
from regbench.report.plots import COLORS, band, new_figure, save
from regbench.reproductions import REPRODUCTIONS
from regbench.reproductions.base import Report, Reproduction

# 20 widths log-spaced 2..300 (np.geomspace rounded; 2.6 and 3.4 both round to 3, so
# 5 fills the gap).
CPU_WIDTHS = [2, 3, 4, 5, 6, 8, 10, 13, 16, 21, 28, 36, 47, 62, 80, 104, 136, 177, 230, 300]
# The 0%-noise arm only needs to show the peak shrinking: half the widths (a subset of
# CPU_WIDTHS, dense around the noisy peak) and one seed keep `make reproduce` short.
CLEAN_WIDTHS = [2, 6, 13, 21, 28, 36, 47, 62, 104, 300]
PAPER_WIDTHS = [1, 2, 3, 4, 6, 8, 10, 12, 14, 16, 20, 24, 32, 48, 64]
NOISE, CLEAN = 0.15, 0.0
ZERO_TRAIN_ERR = 0.01  # "train error reaches 0": at most 1% of the noisy train labels wrong
# MNIST-1D authors' curve (15% noise): local minimum, peak, widest (REPRODUCTIONS.md).
PUBLISHED = {"min": (16, 47.2), "peak": (47, 54.1), "last": (300, 45.5)}


def peak_stats(widths: list[int], err: list[Summary]) -> dict:
    """The interior peak with the largest rise over the minimum before it:
    ``{peak, min, height}`` (width indices and the rise of the means)."""
    best = {"peak": 0, "min": 0, "height": 0.0}
    for j in range(1, len(widths) - 1):
        i = min(range(j), key=lambda k: err[k].mean)
        h = err[j].mean - err[i].mean
        if h > best["height"]:
            best = {"peak": j, "min": i, "height": h}
    return best


@REPRODUCTIONS.register("model_double_descent")
class ModelDoubleDescent(Reproduction):
    name = "model_double_descent"
    title = (
        "Nakkiran et al. 2019 (arXiv 1912.02292): with label noise, test error over model "
        "width peaks near the interpolation threshold, then falls again; the peak shrinks "
        "without noise."
    )
    default_seeds = {"cpu": 2, "paper": 1}
    objective = "test/acc"  # no val split: all 4000 train samples are used

    def grid(self, scale: str) -> tuple[list[str], dict[str, list]]:
        """The noisy arm; :meth:`train` adds the clean arm as a second, smaller grid."""
        if scale == "cpu":
            return ["experiment=model_double_descent"], {
                "data.label_noise": [NOISE],
                "model.width": CPU_WIDTHS,
            }
        return ["experiment=model_double_descent_paper"], {
            "data.label_noise": [NOISE],
            "model.width": PAPER_WIDTHS,
        }

    def train(self, scale: str, seeds: list[int], n_jobs: int) -> str | None:
        from regbench.reproductions.base import grid

        base, axes = self.grid(scale)
        experiment = self.experiment_name(scale)
        noisy = grid(f"{experiment}-noisy", base, axes, seeds, n_jobs, experiment, self.objective)
        self.check(noisy, experiment, scale)
        widths = CLEAN_WIDTHS if scale == "cpu" else PAPER_WIDTHS
        clean = grid(
            f"{experiment}-clean",
            base,
            {"data.label_noise": [CLEAN], "model.width": widths},
            seeds[:1],
            n_jobs,
            experiment,
            self.objective,
        )
        return self.check(clean, experiment, scale)

    def analyse(self, experiment: str, scale: str, out_dir: Path) -> Report:
        def key(r: RunRecord):
            return r.p("data.label_noise", float), r.p("model.width", int), r.seed

        runs = load_runs(experiment, key=key)
        if not runs:
            raise SystemExit(
                f"no finished runs in experiment {experiment!r}; run "
                f"`regbench reproduce {self.name}` first"
            )
        arms: dict[float, dict[int, list[RunRecord]]] = {}
        for r in runs:
            arms.setdefault(r.p("data.label_noise", float), {}).setdefault(
                r.p("model.width", int), []
            ).append(r)
        curves = {}  # noise -> (widths, test err summaries, train err summaries)
        for noise, by_w in arms.items():
            ws = sorted(by_w)
            te = [mean_ci([1 - r.metrics["test/acc"] for r in by_w[w]]) for w in ws]
            tr = [mean_ci([1 - r.metrics["diag/train_acc_evalmode"] for r in by_w[w]]) for w in ws]
            curves[noise] = (ws, te, tr)
        n_seeds = ", ".join(
            f"{min(len(v) for v in arms[n].values())} seed(s) per width at {n:.0%} noise"
            for n in sorted(arms, reverse=True)
        )
        noises = sorted(curves, reverse=True)
        widths = sorted({w for ws, _, _ in curves.values() for w in ws})
        rows = []
        for w in widths:
            row = [w]
            for noise in noises:
                ws, te, tr = curves[noise]
                row += (
                    [te[ws.index(w)].fmt(1, 100), tr[ws.index(w)].fmt(1, 100)]
                    if w in ws
                    else ["", ""]
                )
            rows.append(row)
        headers = ["width"] + [
            f"{h} ({n:.0%} noise)" for n in noises for h in ("test err %", "train err %")
        ]
        md = [
            f"Experiment `{experiment}`, {len(runs)} runs, {n_seeds}; "
            "mean ± 95% t-interval over seeds. Train error is on the (noisy) training "
            "labels, eval mode, after training.",
            table(headers, rows),
        ]
        verdicts = []
        if NOISE in curves:
            md.append(self._published_table(curves[NOISE]))
            verdicts += self._verdicts(curves)
        figures = [self._figure(curves, out_dir)]
        md.append(f"![model-wise double descent]({figures[0].name})")
        return Report("\n\n".join(md), verdicts, figures)

    @staticmethod
    def _published_table(curve) -> str:
        ws, te, _ = curve
        ps = peak_stats(ws, te)
        got = {"min": ps["min"], "peak": ps["peak"], "last": len(ws) - 1}
        rows = [
            [
                k,
                f"{PUBLISHED[k][1]:.1f}% at h={PUBLISHED[k][0]}",
                f"{te[i].fmt(1, 100)}% at h={ws[i]}",
            ]
            for k, i in got.items()
        ]
        return "Next to the MNIST-1D authors' curve (15% noise):\n\n" + table(
            ["point", "published", "measured"], rows
        )

    @staticmethod
    def _threshold(ws, tr) -> int | None:
        return next((w for w, s in zip(ws, tr, strict=True) if s.mean <= ZERO_TRAIN_ERR), None)

    def _verdicts(self, curves) -> list[Verdict]:
        ws, te, tr = curves[NOISE]
        ps = peak_stats(ws, te)
        p, m = te[ps["peak"]], te[ps["min"]]
        spread = max(p.sd if p.n > 1 else 0.0, m.sd if m.n > 1 else 0.0)
        interp = self._threshold(ws, tr)
        wp = ws[ps["peak"]]
        out = [
            Verdict(
                "15% noise: interior test-error peak above the preceding minimum by more "
                "than the seed spread, and falling again after it",
                ps["height"] > 2 * spread and te[-1].mean < p.mean and ps["height"] > 0,
                f"min {m.fmt(1, 100)}% at h={ws[ps['min']]}, peak {p.fmt(1, 100)}% at "
                f"h={wp}, rise {100 * ps['height']:.1f} points vs 2 x seed sd "
                f"{200 * spread:.1f}; widest h={ws[-1]}: {te[-1].fmt(1, 100)}%",
            ),
            Verdict(
                "the peak is near the interpolation threshold (within a factor 2 of the "
                f"smallest width with train error <= {ZERO_TRAIN_ERR:.0%})",
                interp is not None and interp / 2 <= wp <= interp * 2,
                f"peak h={wp}, train error reaches <= {ZERO_TRAIN_ERR:.0%} at h={interp}",
            ),
        ]
        if CLEAN in curves:
            ws0, te0, _ = curves[CLEAN]
            common = [w for w in ws0 if w in ws]  # same widths for both arms
            h0 = peak_stats(common, [te0[ws0.index(w)] for w in common])["height"]
            h1 = peak_stats(common, [te[ws.index(w)] for w in common])["height"]
            out.append(
                Verdict(
                    "the peak shrinks without label noise",
                    h0 < h1,
                    f"rise over the preceding minimum on the {len(common)} widths "
                    f"both arms ran: {100 * h1:.1f} points (15% noise) vs "
                    f"{100 * h0:.1f} (0%)",
                )
            )
        return out

    def _figure(self, curves, out_dir: Path) -> Path:
        fig, (ax,) = new_figure(1, width=6.0, height=4.0)
        for i, noise in enumerate(sorted(curves, reverse=True)):
            ws, te, tr = curves[noise]
            band(ax, ws, te, f"test, {noise:.0%} noise", COLORS[i], scale=100)
            ax.plot(
                ws,
                [s.mean * 100 for s in tr],
                ls="--",
                color=COLORS[i],
                label=f"train (noisy labels), {noise:.0%} noise",
            )
            if noise == NOISE and (h := self._threshold(ws, tr)) is not None:
                ax.axvline(h, color="gray", ls=":", lw=1, label="interpolation threshold")
        ax.set(
            xscale="log",
            xlabel="hidden width h",
            ylabel="error (%)",
            title="Model-wise double descent (MNIST-1D MLP)",
        )
        ax.legend(fontsize=7)
        return save(fig, out_dir / "model_double_descent.png")

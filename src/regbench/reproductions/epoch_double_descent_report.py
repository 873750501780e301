"""The cpu/tiny report of :mod:`epoch_double_descent`: the setup prose read back from
the runs' parameters, the curve table and the figure.

Presentation only, kept apart from the reproduction (its runs, claims and verdicts) so
that each file stays readable. It registers no reproduction: the package imports every
module, and only ``@REPRODUCTIONS.register`` adds one.
"""

from __future__ import annotations

from pathlib import Path

from regbench.report import RunRecord, mean_ci, table
from regbench.report.plots import COLORS, clip_to, curve_band, log_labels, new_figure, save


def linear_text(r: RunRecord | None) -> str:
    """The linear teacher-student setup, from one of its runs ("" without one)."""
    if r is None:
        return ""
    return (
        f"Linear teacher-student (Pezeshki et al. 2022): n={r.p('n')}, d={r.p('d')}, "
        f"{r.p('fast_dims')} fast dims, variance ratio {r.p('kappa', float):g}, "
        f"full-batch GD with step 1/lambda_max, {r.p('steps')} steps, {r.p('draws')} "
        "draws per seed; population test error. The reduced arm is monotone by "
        "construction (one learning speed): its claim is a sanity check, not evidence."
    )


def authors_text(r: RunRecord | None) -> str:
    """Heckel & Yilmaz's own two-layer setting, from its same-step run ("" without one)."""
    if r is None:
        return ""
    return (
        "Two-layer ReLU net in Heckel & Yilmaz's own setting (their notebook "
        "early_stopping_two-layer-nn_double_descent.ipynb): Linear(d, k) - ReLU - "
        f"Linear(k, 1) with biases, n={r.p('n')}, d={r.p('d')}, k={r.p('hidden')}, inputs "
        f"with sd geometric over {r.p('s_range')}, noise-free linear teacher; PyTorch's "
        f"init with the weights scaled by {r.p('w_scale', float):g} and "
        f"{r.p('v_scale', float):g}; full-batch GD on the summed squared error, step "
        f"{r.p('lr', float):g} for every parameter, the scaled arm's first layer "
        f"{r.p('lr_first_scaled', float):g}; {r.p('steps')} steps, {r.p('draws')} draws per "
        f"seed; test risk = mean absolute error on {r.p('n_test')} fresh inputs over the "
        "zero predictor's (1 = predicting 0)."
    )


def two_layer_text(r: RunRecord | None) -> str:
    """The two-layer setup, from its equal-step run ("" without one)."""
    if r is None:
        return ""
    return (
        "Two-layer ReLU net, a constructed instance of Heckel & Yilmaz's mechanism (not "
        f"the paper's network): f(x) = v . relu(W x) / sqrt(k), n={r.p('n')}, "
        f"d={r.p('d')}, k={r.p('hidden')}; the first-layer init rows take "
        f"{r.p('directions')} distinct directions (control: {r.p('hidden')}, independent), "
        f"init scales {r.p('w_scale', float):.3g} / {r.p('v_scale', float):.3g}, linear "
        f"teacher, label noise std {r.p('noise', float):g}; full-batch GD, step "
        f"{r.p('lr', float):g}/lambda_max of the tangent kernel, the reduced arm's "
        f"output-layer step x {r.p('fast_lr_scale', float):g}; {r.p('steps')} steps, "
        f"{r.p('draws')} draws per seed; test MSE on {r.p('n_test')} fresh inputs."
    )


def curve_table(arms, labels) -> str:
    """Mean test error per arm at every third logged step (and the last one)."""
    steps = next(iter(arms.values()))[0]
    show = [i for i in range(len(steps)) if i % 3 == 0 or i == len(steps) - 1]
    means = {a: [mean_ci(col) for col in zip(*c.values(), strict=True)]
             for a, (_, c) in arms.items()}  # fmt: skip
    rows = [[steps[i], *[means[a][i].fmt(3) for a in arms]] for i in show]
    return table(["step", *[labels[a] for a in arms]], rows)


def curve_figure(panels, out_dir: Path) -> Path:
    """One panel per mechanism, ``panels``: (arms' curves, labels, title); mean ± CI
    over draws of every arm's test error on a log step axis."""
    fig, axes = new_figure(len(panels), width=6.0, height=4.0)
    for ax, (arms, labels, title) in zip(axes, panels, strict=True):
        for k, (arm, (steps, curves)) in enumerate(arms.items()):
            curve_band(ax, steps, list(curves.values()), labels[arm], COLORS[k], marker=".")
        ax.set(xscale="log", xlabel="gradient step t", ylabel="test error (MSE)",
               title=f"Epoch-wise double descent: {title}")  # fmt: skip
        log_labels(ax, "x")
        clip_to(ax, 0, None)  # an MSE: two draws' t-interval must not make the axis read -1
        ax.legend(fontsize=7)
    return save(fig, out_dir / "epoch_double_descent.png")

"""model_double_descent: the notebook's setup, the claim statistics on hand-made curves,
and the tiny scale end to end through `regbench reproduce` (every claim INCONCLUSIVE)."""

from __future__ import annotations

import math

import pytest

from regbench.config import compose
from regbench.report import report_dir
from regbench.report.claims import SUPPORTED
from regbench.reproductions import model_double_descent as mdd


def test_cpu_config_is_the_notebooks_setup():
    cfg = compose(["experiment=model_double_descent"])
    d, m, o = cfg.data, cfg.model, cfg.optim
    assert (d.n_train, d.n_test, d.val_fraction, d.batch_size) == (4000, 12000, 0.0, 100)
    assert (d.label_noise, d.label_noise_mode) == (0.15, "resample")
    assert (m.depth, list(m.block), m.norm, m.init) == (2, ["linear", "act"], "none", "default")
    assert (o.lr, o.momentum, o.weight_decay, cfg.trainer.max_epochs) == (0.01, 0.9, 0.0, 500)
    assert cfg.scheduler.name == "constant"
    assert mdd.WIDTHS == [2, 3, 4, 5, 7, 9, 12, 16, 21, 27, 36, 47, 61, 80, 104, 135, 177, 230, 300]
    base, axes = mdd.ModelDoubleDescent().grid("cpu")
    assert axes == {"data.label_noise": [0.15, 0.0], "model.width": mdd.WIDTHS}


def test_peak_window_rise_and_transition_position():
    ws = [4, 12, 16, 36, 47, 300]
    err = [0.8, 0.5, 0.47, 0.52, 0.54, 0.45]
    assert mdd.peak_stats(ws, err) == {"peak": 4, "min": 2, "height": pytest.approx(0.07)}
    assert mdd.peak_stats(ws, [0.9, 0.5, 0.4, 0.3, 0.2, 0.9])["height"] == 0.0  # rise at the end
    assert mdd.window_rise(ws, err) == pytest.approx(0.54 - 0.47)
    assert mdd.window_rise([4, 300], [0.5, 0.4]) is None
    train = [0.6, 0.3, 0.2, 0.1, 0.05, 0.0]  # >= 15% up to h=16, <= 1% from h=300
    expected = math.log(47 / 16) / math.log(300 / 16)
    assert mdd.transition_position(ws, train, 47) == pytest.approx(expected)
    assert mdd.transition_position(ws, [0.6] * 6, 47) is None  # never interpolates


def _published_like(seed: int) -> dict:
    """Curves shaped like the notebook's (its 15%-noise and clean test errors where it
    gives them, made-up values elsewhere), with a small per-seed offset."""
    ws = mdd.WIDTHS
    noisy = dict.fromkeys(ws[:7], 0.6) | {w: v / 100 for w, v in mdd.PUBLISHED[0.15].items()}
    clean = {w: 0.45 - 0.0002 * i for i, w in enumerate(ws)}
    train = {w: (0.3 if w < 36 else 0.12 if w == 36 else 0.05 if w == 47 else 0.0) for w in ws}
    eps = 0.002 * seed
    return {
        0.15: (ws, [noisy[w] + eps for w in ws], [train[w] for w in ws]),
        0.0: (ws, [clean[w] - eps for w in ws], [0.0] * len(ws)),
    }


def test_a_curve_like_the_published_one_supports_every_claim():
    per = {s: _published_like(s) for s in range(3)}
    curves = {n: {s: per[s][n] for s in per} for n in (0.15, 0.0)}
    out = {v.claim.key: v for v in mdd.verdicts(curves, 3)}
    assert {k: v.status for k, v in out.items()} == dict.fromkeys(mdd.CLAIMS, SUPPORTED)
    assert out["peak"].summary.mean == pytest.approx(math.log2(47))
    assert out["rise"].summary.mean == pytest.approx(0.5405 - 0.4724)


def test_tiny_scale_one_seed_every_claim_inconclusive(capsys):
    """Must-show 1: `regbench reproduce model_double_descent --scale tiny --seeds 1`.
    One seed has no interval, so no claim can be SUPPORTED (or REFUTED)."""
    from regbench.reproductions import main

    main("reproduce", ["model_double_descent", "--scale", "tiny", "--seeds", "1", "--n-jobs", "1"])
    out = capsys.readouterr().out
    assert "model_double_descent (tiny scale): 0 SUPPORTED, 0 REFUTED, 5 INCONCLUSIVE" in out
    path = report_dir("model_double_descent", "tiny") / "report.md"
    assert f"report: {path} " in out and "| 36 |" not in out  # the path, not the markdown
    text = path.read_text()
    assert "## Claims: 0 SUPPORTED, 0 REFUTED, 5 INCONCLUSIVE" in text
    rows = [line for line in text.splitlines() if "**INCONCLUSIVE**" in line]
    assert len(rows) == 5
    # each is short of seeds: one value, or none where the statistic is undefined
    assert all("one seed; needs 3" in r or "no values" in r for r in rows)
    assert "| 36 |" in text and "52.80" in text  # measured next to the published value
    assert "model_double_descent.png" in text

"""`regbench compare`: grouping, seed statistics, paired differences, artifacts on the
parent run and bad input, on a real MLflow store (runs logged through regbench.tracking
with known values), plus one real `train -m`-style grid trained for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from regbench.report.compare import compare, main
from regbench.report.groups import Group, RunRecord, fmt_summary, summarize, varied_keys
from regbench.report.stats import mean_ci
from regbench.tracking import NOTE_TAG, get_client, log_params, tracked_run

SUMMARY = "compare/summary.json"
NAN = float("nan")
# test/acc per (reg, seed): differences from [] are +0.02, +0.03, +0.04 for [l2]
ACC = {"[]": [0.50, 0.60, 0.55], "[l2]": [0.52, 0.63, 0.59]}


def fake_grid(experiment: str, name: str, acc=ACC, status: str = "FINISHED") -> str:
    """A parent run and one child per (reg, seed) with known metrics; no training."""
    children = []
    with tracked_run(experiment, name, tags={"sweep.role": "parent"}) as parent:
        for reg, values in acc.items():
            for seed, v in enumerate(values):
                with tracked_run(experiment, f"c-{reg}-{seed}", parent_run_id=parent.run_id) as c:
                    params = {"seed": str(seed), "reg": reg, "model.width": "32"}
                    if reg == "[l2]":
                        params["reg.l2.strength"] = "0.0001"
                    log_params(c.client, c.run_id, params)
                    for epoch in range(3):
                        c.log_metrics({"val/acc": v - 0.1 * (2 - epoch)}, step=epoch)
                    c.log_metrics({"test/acc": v, "test/loss": 1 - v})
                children.append(c.run_id)
    for run_id in children if status != "FINISHED" else []:
        parent.client.set_terminated(run_id, status)
    return parent.run_id


def test_varied_keys_drop_seed_constants_size_and_implied_details():
    def rec(**p):
        return RunRecord("x", {k.replace("__", "."): v for k, v in p.items()}, {})

    runs = [
        rec(seed="0", reg="[]", model__width="32", model__params="900", model__dropout="0"),
        rec(seed="1", reg="[l1]", reg__l1__kind="l1", model__width="32", model__params="900",
            model__dropout="0"),
        rec(seed="0", reg="[l1]", reg__l1__kind="l1", model__width="64", model__params="3000",
            model__dropout="0.5"),
    ]  # fmt: skip
    # reg.l1.kind follows from reg: dropped; model.dropout varies with model.width in
    # lockstep but is a setting of its own: kept; model.params is not a setting
    assert varied_keys(runs) == ["model.dropout", "model.width", "reg"]


def test_a_diverged_seed_is_left_out_and_counted():
    runs = {s: RunRecord(str(s), {}, {"test/loss": v}) for s, v in enumerate([1.0, 2.0, NAN])}
    g = Group({"reg": "[]"}, runs)
    assert g.values("test/loss") == {0: 1.0, 1: 2.0}
    s = summarize(g, "test/loss")
    assert fmt_summary(s, 2, len(g.runs)) == f"1.50 ± {s.half:.2f} (n=2)"


def test_compare_tables_stats_and_artifacts_on_the_parent(experiment, capsys, tmp_path):
    pid = fake_grid(experiment, "grid-a")
    main(["grid-a", "--experiment", experiment, "--baseline", "reg=[]"])
    out = capsys.readouterr().out
    lines = out.splitlines()
    base_row = next(ln for ln in lines if ln.startswith("| **baseline** reg=[]"))
    s = mean_ci(ACC["[]"])
    assert base_row.split(" | ")[2] == f"{s.mean:.4f} ± {s.half:.4f}"  # test/acc column
    d = mean_ci([0.02, 0.03, 0.04])  # paired per-seed differences
    diff_row = [ln for ln in lines if ln.startswith("| reg=[l2] |")][-1]
    assert diff_row.split(" | ")[1] == f"{d.mean:+.4f} [{d.lo:+.4f}, {d.hi:+.4f}]"
    assert d.half < mean_ci(ACC["[l2]"]).half  # pairing removes the seed-to-seed spread
    client = get_client()
    arts = {a.path for a in client.list_artifacts(pid, "compare")}
    assert arts == {
        "compare/summary.json",
        "compare/report.md",
        "compare/metrics_vs_setting.png",
        "compare/val_curves.png",
    }
    table = json.loads(Path(client.download_artifacts(pid, SUMMARY, tmp_path)).read_text())
    assert len(table["data"]) == 2 * 3  # 2 configurations x (test/acc, test/loss, val/acc)
    assert '"type": "table"' in client.get_run(pid).data.tags["mlflow.loggedArtifacts"]
    main(["grid-a", "--experiment", experiment])  # again, default baseline = first group
    again = json.loads(Path(client.download_artifacts(pid, SUMMARY, tmp_path)).read_text())
    assert len(again["data"]) == 2 * 3  # replaced, not appended to
    rows = {(r[0], r[2]): r for r in map(list, again["data"])}
    cols = again["columns"]
    assert rows[("reg=[]", "test/acc")][cols.index("baseline")] is True
    report = Path(os.environ["REGBENCH_REPORTS"], "compare", "grid-a", "report.md")
    assert "![val_curves.png](val_curves.png)" in report.read_text()


def test_bad_input_is_one_line_and_exit_2(experiment, capsys):
    fake_grid(experiment, "grid-b")
    fake_grid(experiment, "grid-dead", status="KILLED")
    cases = [
        (["nope-xyz"], "regbench compare: no parent run named 'nope-xyz' in any experiment"),
        (
            ["grid-dead", "--experiment", experiment],
            "has no FINISHED child runs with a seed param",
        ),
        (
            ["grid-b", "--experiment", experiment, "--baseline", "reg=[l9]"],
            "--baseline='reg=[l9]' matches no configuration; reg has values: [], [l2]",
        ),
        (
            ["grid-b", "--experiment", experiment, "--baseline", "optim.lr=1"],
            "--baseline key 'optim.lr' is not a varied setting; varied: reg",
        ),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_cli_unknown_name_exits_2_without_traceback(tmp_path):
    env = {**os.environ, "REGBENCH_MLRUNS": str(tmp_path), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "regbench.cli", "compare", "no-such-sweep"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr == (
        "regbench compare: no parent run named 'no-such-sweep' in any experiment "
        "(tried run id, run name and the tags sweep.id, sweep.study, regbench.reproduction)\n"
    )


def test_compare_a_trained_multirun_grid(tiny, experiment):
    """Real runs: the multirun callback's parent, reg=[l1] vs reg=[] over two seeds."""
    from omegaconf import OmegaConf

    from regbench.sweep.multirun import MultirunTracking
    from regbench.train import run

    task = ["reg=[l1],[]", "seed=0,1"]
    conf = OmegaConf.create({"experiment_name": experiment, "hydra": {"overrides": {"task": task}}})
    cb = MultirunTracking()
    cb.on_multirun_start(conf)
    pid = os.environ["REGBENCH_PARENT_RUN_ID"]
    try:
        for reg in ("[l1]", "[]"):
            for seed in (0, 1):
                ov = [f"reg={reg}", f"seed={seed}", "trainer=fast"]
                run(tiny(*ov, experiment_name=experiment), ov)
    finally:
        cb.on_multirun_end(conf)
    client = get_client()
    parent = client.get_run(pid)
    assert "regbench compare multirun-" in parent.data.tags[NOTE_TAG]
    text, out_dir = compare(parent.info.run_name, experiment=experiment)
    assert "| **baseline** reg=[l1] | 2 |" in text and "| reg=[] | 2 |" in text
    assert "time/fit_s" in text  # cost metrics are final metrics like any other
    assert (out_dir / "metrics_vs_setting.png").stat().st_size > 10_000


def test_batched_time_shares_are_shown_without_intervals_and_say_why(experiment, capsys):
    """Batched runs log time/fit_s as their share of their group's wall time: equal for
    the seeds of a group, so a t-interval would have zero width. The first group also
    paid the process's warm-up (issue 21: "+4.6643 [+4.6643, +4.6643]" read as "L1 is six
    times slower")."""
    fit = {"[l1]": 5.6, "[]": 0.93}  # one share per group
    with tracked_run(experiment, "grid-b", tags={"sweep.role": "parent"}) as parent:
        for reg, acc in (("[l1]", [0.50, 0.56]), ("[]", [0.52, 0.55])):
            for seed, v in enumerate(acc):
                tags = {"regbench.exec": "batched"}
                with tracked_run(experiment, f"{reg}-{seed}", tags=tags,
                                 parent_run_id=parent.run_id) as c:  # fmt: skip
                    log_params(c.client, c.run_id, {"seed": str(seed), "reg": reg})
                    c.log_metrics({"test/acc": v, "time/fit_s": fit[reg], "test/loss": 0.5})
    main(["grid-b", "--experiment", experiment, "--baseline", "reg=[]"])
    out = capsys.readouterr().out

    def cells(prefix: str) -> list[str]:  # the last table row starting with prefix
        line = [ln for ln in out.splitlines() if ln.startswith(prefix)][-1]
        return [c.strip() for c in line.strip().strip("|").split("|")]

    head = cells("| configuration | seeds |")
    base_row, diff_row = cells("| **baseline** reg=[]"), cells("| reg=[l1] |")
    assert base_row[head.index("time/fit_s")] == "0.9300 (batched share†)"
    assert diff_row[head.index("time/fit_s") - 1] == "+4.6700 (batched shares†: no interval)"
    assert "[+4.6700, +4.6700]" not in out
    assert "† Batched runs log their share of their group's wall time" in out
    # a measured metric keeps its interval; test/loss, equal on every seed, gets none
    acc = mean_ci([0.52, 0.55])
    assert base_row[head.index("test/acc")] == f"{acc.mean:.4f} ± {acc.half:.4f}"
    assert base_row[head.index("test/loss")] == "0.5000 (equal on all 2 seeds)"
    rows = json.loads(
        Path(out.split("report: ")[1].split("  (")[0]).with_name("summary.json").read_text()
    )
    fit_rows = [r for r in rows if r["metric"] == "time/fit_s"]
    assert all(r["shared_in_batched_group"] and r["ci95_lo"] is None for r in fit_rows)
    assert not any(r["shared_in_batched_group"] for r in rows if r["metric"] == "test/acc")


def test_a_reproduction_is_compared_over_all_its_grids_by_its_declared_arms(
    capsys, monkeypatch, tmp_path
):
    """variance_shift trains "no dropout" as a grid of its own: `compare variance_shift`
    reads both grids, labels each configuration by its arm (plus the rate, which varies
    within arms) and compares with the declared baseline, "no dropout"."""
    from regbench.report import REPRO_TAG
    from regbench.reproductions import compare_source

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'fresh.db'}")
    experiment = "reproduce-variance_shift-tiny"
    acc = {("none", "0.1"): 0.50, ("before_bn", "0.1"): 0.45, ("before_bn", "0.5"): 0.40}
    blocks = {"none": "[linear, norm, act]", "before_bn": "[linear, dropout, norm, act]"}
    for grid, placements in (("none", ["none"]), ("main", ["before_bn"])):
        tags = {REPRO_TAG: "variance_shift", "regbench.scale": "tiny", "sweep.study": grid}
        with tracked_run(experiment, f"grid-{grid}", tags=tags) as parent:
            for (pl, rate), a in acc.items():
                if pl not in placements:
                    continue
                for seed in range(2):
                    with tracked_run(experiment, "c", parent_run_id=parent.run_id) as c:
                        params = {"seed": str(seed), "vs_placement": pl, "vs_rate": rate,
                                  "model.block": blocks[pl]}  # fmt: skip
                        log_params(c.client, c.run_id, params)
                        c.log_metrics({"test/acc": a + 0.01 * seed, "test/loss": 1 - a})
    text, _ = compare("variance_shift", source=compare_source("variance_shift", None))
    assert "3 configurations, 6 runs from the parent runs grid-main (" in text
    assert "| **baseline** no dropout | 2 | 0.5050 ± 0.0635 |" in text
    assert "| dropout before BN, vs_rate=0.1 | 2 | 0.4550" in text
    # the same difference on both seeds: no zero-width interval (issue 21)
    assert (
        "| dropout before BN, vs_rate=0.5 | -0.1000 (the same on all 2 seeds: no interval) |"
        in text
    )
    assert "model.block" not in text  # follows from the arm: not part of the label


def test_differences_equal_up_to_rounding_get_no_interval():
    """Accuracy differences equal on paper differ in their last bits (0.3 - 0.2 and
    0.4 - 0.3): such a 1e-17 spread printed as a zero-width interval, '+0.0333 [+0.0333,
    +0.0333]' on the newcomer's walk."""
    from regbench.report.groups import fmt_diff, fmt_summary
    from regbench.report.stats import mean_ci

    a, b = 0.3 - 0.2, 0.4 - 0.3
    assert a != b  # the case: equal on paper, not in float
    assert fmt_diff(mean_ci([a, b])) == "+0.1000 (the same on all 2 seeds: no interval)"
    assert fmt_summary(mean_ci([0.1 + 0.2, 0.3])) == "0.3000 (equal on all 2 seeds)"
    assert fmt_diff(mean_ci([0.03, 0.04])) == "+0.0350 [-0.0285, +0.0985]"

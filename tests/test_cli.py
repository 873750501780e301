"""The command line: `regbench train` end to end, and errors before training."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import runs_of
from regbench.cli import main
from regbench.tracking import get_client

PER_EPOCH = ("train/loss", "train/acc", "val/loss", "val/acc")


def test_train_command_twice_gives_identical_tracked_runs(experiment, capsys):
    args = [
        "train",
        "model.width=64",
        "trainer.max_epochs=3",
        "seed=7",
        f"experiment_name={experiment}",
    ]
    main(args)
    assert "test/acc=" in capsys.readouterr().out
    main(args)
    runs = runs_of(experiment)
    assert [r.info.status for r in runs] == ["FINISHED", "FINISHED"]
    client = get_client()
    for r in runs:
        assert r.info.run_name == "mlp-w64-ep3-s7"
        for key in PER_EPOCH:
            assert len(client.get_metric_history(r.info.run_id, key)) == 3, key
        assert {"test/acc", "test/loss"} <= set(r.data.metrics)
        assert "config.yaml" in [a.path for a in client.list_artifacts(r.info.run_id)]
        assert {
            "git.commit",
            "git.dirty",
            "device",
            "data.fingerprint",
            "version.torch",
            "version.lightning",
            "version.mlflow",
        } <= set(r.data.tags)
    # every final metric bit for bit, test/acc included; time/ (wall-time cost) aside
    a, b = ({k: v for k, v in r.data.metrics.items() if not k.startswith("time/")} for r in runs)
    assert a == b and "time/fit_s" in runs[0].data.metrics


def test_bad_norm_exits_nonzero_before_training_naming_key_and_choices(tmp_path):
    env = {**os.environ, "REGBENCH_MLRUNS": str(tmp_path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "regbench.cli", "train", "model.norm=banana"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode != 0
    assert (
        "model.norm='banana' is not a known norm; choose one of: "
        "batch, group, instance, layer, none"
    ) in proc.stderr
    assert "Epoch" not in proc.stderr + proc.stdout  # nothing trained
    os.environ["REGBENCH_MLRUNS"], old = str(tmp_path), os.environ["REGBENCH_MLRUNS"]
    try:
        assert runs_of("train") == []
    finally:
        os.environ["REGBENCH_MLRUNS"] = old


def test_bench_prints_a_ratio_line_per_width(capsys):
    import re

    from regbench.bench import main as bench

    before = len(runs_of("bench"))
    bench(["--reps", "1", "--epochs", "1", "--widths", "16", "--no-resnet", "--no-batched"])
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("mlp width=16")]
    assert len(line) == 1
    m = re.search(r"full_stack=([\d.]+)s hand_loop=([\d.]+)s.* ratio=([\d.]+)$", line[0])
    assert m, line[0]
    full, hand, ratio = map(float, m.groups())
    # the ratio is the printed full-stack time over the hand loop's (3-decimal rounding)
    assert hand > 0 and ratio == pytest.approx(
        full / hand, abs=2 * (5e-4 + 5e-4 / hand + 5e-4 * full / hand**2)
    )
    # the full stack really ran: a warm-up and one timed run, both tracked and finished
    runs = runs_of("bench")
    assert len(runs) == before + 2
    assert all(r.info.status == "FINISHED" for r in runs[:2])


def test_bench_batched_conv_line_times_a_group_against_one_seed():
    """The cnn1d group line (issue 22): 8 seeds as one program, its ratio the printed
    program time over one seed's plain loop, every model tracked as its own run."""
    import re

    from regbench.bench.batched import bench_batched
    from regbench.bench.mlp import _overrides, hand_loop

    before = len(runs_of("bench"))
    base = [*_overrides(128, 1), "data.n_train=400"]
    line = bench_batched(base, hand_loop, "cnn1d width=32", reps=1, epochs=1)
    m = re.match(
        r"batched cnn1d width=32 seeds=8 epochs=1 program=([\d.]+)s "
        r"hand_loop\(1 seed\)=([\d.]+)s \(target <= 5.00: (ok|MISSED)\) ratio=([\d.]+) ",
        line,
    )
    assert m, line
    prog, hand, ratio = float(m[1]), float(m[2]), float(m[4])
    assert ratio == pytest.approx(prog / hand, abs=2 * (5e-4 + 5e-4 / hand + 5e-4 * prog / hand**2))
    runs = runs_of("bench")  # warm-up and one timed pass, 8 tracked runs each
    assert len(runs) == before + 16
    assert all(r.data.tags.get("regbench.exec") == "batched" for r in runs[:16])


def test_no_command_is_usage_and_exit_2_and_help_is_usage_and_exit_0(capsys):
    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: regbench <command> [args]") and "examples:" in err
    main(["--help"])
    assert capsys.readouterr().out.startswith("usage: regbench <command> [args]")


@pytest.mark.parametrize(
    "cmd", ["sweep", "compare", "reproduce", "report", "site", "bench", "doctor"]
)
def test_every_subcommand_help_says_what_it_does_with_defaults_and_examples(cmd, capsys):
    """The newcomer's walk: `regbench CMD --help` is usage, a description, every option
    and an example line of the command itself, exit 0."""
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: regbench {cmd} ")
    assert "``" not in out  # no docstring markup
    examples = out.split("\nexamples:\n", 1)[1].splitlines()
    assert any(line.strip().startswith(f"regbench {cmd}") for line in examples), out


def test_train_help_lists_the_groups_users_compose_with_defaults_and_examples(capsys):
    main(["train", "--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: regbench train [KEY=VALUE | GROUP=CHOICE ...]")
    assert "powered by Hydra" not in out
    groups = [line.split()[0] for line in out.splitlines() if line.startswith("  ") and
              line.split()[0] in ("data", "model", "optim", "scheduler", "trainer", "logger",
                                  "reg", "experiment", "shared")]  # fmt: skip
    assert groups == ["data", "model", "optim", "scheduler", "trainer", "logger", "reg",
                      "experiment"]  # fmt: skip
    assert "mnist1d*" in out and "mlp*" in out and "adam*" in out  # the defaults, marked
    assert "dmn_arm" not in out and "vs_placement" not in out  # internal subgroups
    assert "trainer.max_epochs=60" in out and "examples:" in out


def test_a_plain_or_refused_train_leaves_no_hydra_output_folder(experiment):
    from regbench.paths import ROOT

    runs = ROOT / "mlruns" / "hydra" / "runs"
    before = set(runs.iterdir()) if runs.is_dir() else set()
    main(["train", *TINY_ARGS, "trainer.max_epochs=1", f"experiment_name={experiment}"])
    with pytest.raises(SystemExit):
        main(["train", "model.dropout=2", f"experiment_name={experiment}"])
    after = set(runs.iterdir()) if runs.is_dir() else set()
    assert after == before
    assert [r.info.status for r in runs_of(experiment)] == ["FINISHED"]


TINY_ARGS = ["data.n_train=600", "data.n_test=200", "model.width=32", "trainer.progress_bar=false"]


def test_a_refused_value_answers_before_lightning_is_imported():
    """trainer.precision's check imports Lightning (most of a cold start): it runs last,
    so a bad value anywhere else is refused without that import."""
    code = (
        "import sys\n"
        "from regbench.cli import main\n"
        "try:\n"
        "    main(['train', 'data.batch_size=0'])\n"
        "except SystemExit as e:\n"
        "    print(e.code, 'lightning_fabric' in sys.modules, 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.split() == ["2", "False", "False"], done.stderr[-2000:]
    assert done.stderr.strip().endswith(
        "data.batch_size=0 is not valid; it must be an integer >= 1"
    )


def test_the_ui_link_names_the_store_the_run_is_in(tmp_path, monkeypatch):
    """The newcomer's walk: a run in MLFLOW_TRACKING_URI=sqlite:///other.db printed "make
    ui, then http://127.0.0.1:5000/...", but make ui serves the default store only."""
    from regbench.cli import ui_link
    from regbench.tracking import tracked_run

    with tracked_run("ui-link", "r") as run:
        pass
    assert ui_link(run.run_id).startswith("make ui, then http://127.0.0.1:5000/#/experiments/")
    uri = f"sqlite:///{tmp_path / 'other.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with tracked_run("ui-link", "r") as run:
        pass
    link = ui_link(run.run_id)
    assert link.startswith(f"uv run mlflow ui --backend-store-uri {uri}, then http://127.0.0.1")
    assert link.endswith(f"/runs/{run.run_id}?workflowType=machine_learning")

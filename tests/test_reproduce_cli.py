"""`regbench reproduce | report`: discovery and --list, --all, and the exit status (0
whatever the verdicts, non-zero only when runs fail or are missing)."""

from __future__ import annotations

import pytest

from regbench.reproductions import get, listing, main, names


def test_every_reproduction_registers_itself_with_a_tiny_and_a_cpu_scale():
    found = names()
    assert {"variance_shift", "model_double_descent", "epoch_double_descent"} <= set(found)
    lines = listing().splitlines()
    assert len(lines) == len(found)
    for name, line in zip(found, lines, strict=True):
        repro = get(name)
        assert line.startswith(name) and repro.title in line
        assert {"tiny", "cpu"} <= set(repro.default_seeds), name


def test_name_and_all_are_exclusive(capsys):
    for argv in ([], ["variance_shift", "--all"]):
        with pytest.raises(SystemExit) as e:
            main("report", argv)
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("regbench report: name one reproduction or pass --all; one of: ")


def test_all_tries_every_reproduction_and_fails_only_at_the_end(capsys):
    # no paper-scale runs exist in the test store: every report fails, none stops the rest
    with pytest.raises(SystemExit) as e:
        main("report", ["--all", "--scale", "paper"])
    assert str(e.value).startswith("regbench report --all: runs failed in ")
    out = capsys.readouterr().out
    for name in names():
        assert f"regbench report {name}: " in out
    assert f"report --all (paper): {len(names())} reproductions" in out


def test_a_refuted_claim_is_a_result_not_an_error(capsys):
    from test_variance_shift import _grid, _log

    experiment = get("variance_shift").experiment_name("cpu")
    _grid(experiment)
    for seed in range(3):  # dropout after the last BN shifts: its floor claim is REFUTED
        _log(experiment, "head", 0.5, seed, 1.3 + 0.01 * seed)
    main("report", ["variance_shift"])  # returns: exit status 0
    out = capsys.readouterr().out
    assert "variance_shift (cpu scale): " in out and "1 REFUTED" in out
    refuted = [line for line in out.splitlines() if line.startswith("  REFUTED ")]
    assert len(refuted) == 1 and "dropout after last BN, 0.5: no shift" in refuted[0]


def test_report_finds_the_scale_that_has_runs_and_names_it(capsys, monkeypatch, tmp_path):
    """`report NAME` without --scale: the scale that has runs (here tiny only); where none
    has runs, or the scale asked for has none, one line naming what exists, exit status 2."""
    from test_variance_shift import _grid

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'fresh.db'}")
    with pytest.raises(SystemExit) as e:
        main("report", ["variance_shift"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("regbench report: no runs of variance_shift at any scale in sqlite:")
    assert err.endswith("run `regbench reproduce variance_shift --scale tiny` first")
    _grid(get("variance_shift").experiment_name("tiny"))
    main("report", ["variance_shift"])
    out = capsys.readouterr().out
    assert out.startswith("report variance_shift: tiny scale (--scale to choose another)\n")
    assert (
        "variance_shift (tiny scale): findings 4 SUPPORTED, 0 REFUTED, 0 INCONCLUSIVE; "
        "checks 3 SUPPORTED, 0 REFUTED, 0 INCONCLUSIVE" in out
    )
    with pytest.raises(SystemExit):
        main("report", ["variance_shift", "--scale", "cpu"])
    err = capsys.readouterr().err
    assert "no runs of variance_shift at cpu scale in " in err
    assert "(runs exist at: tiny); run `regbench reproduce variance_shift --scale cpu` first" in err

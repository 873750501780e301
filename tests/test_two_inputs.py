"""two_inputs at tiny scale: closed forms met, the folk claim refuted at the end point,
resumable, and the report rebuilt from MLflow alone."""

from __future__ import annotations

import torch

from conftest import runs_of


def test_population_closed_forms_match_the_published_numbers():
    from regbench.reproductions.two_inputs import closed_form, make_data, population

    assert population("none") == (1.0, 0.0)
    assert round(population("l2")[1], 3) == 0.097  # REPRODUCTIONS.md: lam = 0.1 -> 0.097
    assert [round(v, 2) for v in population("dropout")] == [0.43, 0.20]
    # on a large sample, the sample closed forms approach the population ones
    x = make_data(200_000, [7])
    for arm in ("l2", "dropout", "l1"):
        assert torch.allclose(
            closed_form(x, arm)[0], torch.tensor(population(arm)).double(), atol=0.01
        )


def test_two_inputs_tiny_verdicts_resume_and_report(experiment):
    from regbench.reproductions.base import build_report
    from regbench.reproductions.two_inputs import TwoInputs

    repro = TwoInputs()
    repro.experiment_name = lambda scale: experiment
    repro.train("tiny", [0, 1, 2], 1)
    n_runs = len(runs_of(experiment))
    assert n_runs == 1 + 4 * 3  # parent + one child per arm and seed
    repro.train("tiny", [0, 1, 2], 1)  # resumes: every child is finished
    assert len(runs_of(experiment)) == n_runs + 1
    rep = repro.analyse(experiment, "tiny", build_report(repro, "tiny").parent)
    status = {v.claim.key: v.status for v in rep.claims}
    expected = {
        "none_closed": "SUPPORTED",
        "l2_closed": "SUPPORTED",
        "l1_closed": "SUPPORTED",
        "dropout_closed": "SUPPORTED",
        "l1_zero": "SUPPORTED",
        "l2_folk_end": "REFUTED",
        "dropout_folk_end": "REFUTED",
        "l2_path_0.25": "SUPPORTED",
        "dropout_path_0.25": "SUPPORTED",
        "l2_path_0.05": "REFUTED",
        "dropout_path_0.05": "REFUTED",
    }
    assert status == expected
    assert (build_report(repro, "tiny").parent / "two_inputs.png").stat().st_size > 10_000

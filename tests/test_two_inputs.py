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
    from regbench.report.family import holm
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
    fam = {v.claim.key: v for v in holm(rep.claims)}
    # the exact checks (closed forms, soft-thresholding's zero): never in the family
    for key in ("none_closed", "l2_closed", "l1_closed", "l1_zero"):
        assert (fam[key].status, fam[key].claim.role, fam[key].holm_level) == (
            "SUPPORTED",
            "check",
            None,
        )
    # strong effects of the folk claim, family-wise too: the closed forms put w_B well
    # above the unregularized 0 (REFUTED at the end point), no path reaches 0.05 within
    # the run (censored: REFUTED), dropout's path passes 0.25 about 15 steps sooner.
    # l2_path_0.25 (a step or less either way) and the dropout bound are not pinned.
    expected = {
        "l2_folk_end": "REFUTED",
        "dropout_folk_end": "REFUTED",
        "dropout_path_0.25": "SUPPORTED",
        "l2_path_0.05": "REFUTED",
        "dropout_path_0.05": "REFUTED",
    }
    for key, status in expected.items():
        v = fam[key]
        assert (v.status, v.family_status, v.claim.role) == (status, status, "folk"), key
        assert v.p_value < v.holm_level / 5, key
    assert fam["l2_folk_end"].related == (
        "l2_path_0.25",
        "l2_path_0.05",
        *(k for k in fam if k.startswith("dropout_") and k != "dropout_closed"),
    )  # the l2 path and the none arm's path
    assert (build_report(repro, "tiny").parent / "two_inputs.png").stat().st_size > 10_000

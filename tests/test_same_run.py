"""One config and seed, one run, however it is executed (docs/ARCHITECTURE.md,
"Randomness"): trained alone (``train.run``, what ``REGBENCH_BATCHED=0`` does), in two
batched groups with different companions in different orders (one of them padding it to
a wider model), every stochastic draw of the run is bitwise the same; the two groups'
``train/loss`` histories agree within 1e-6 relative, and batched against alone within
1e-5 over 3 epochs. Draws are recorded where they happen: the raw draw of every noise
layer (dropout kinds, DropConnect, DropPath per sample) keyed by (stream, counter), the
batch-mode DropPath decisions, augment1d's and mixup's draws, crop_flip's crops, and the
label noise through the data fingerprint.
"""

from __future__ import annotations

import os

import pytest
import torch

from draws import recorded, same
from regbench.batched.plan import EXEC_TAG
from regbench.batched.runs import run_members
from regbench.tracking import get_client

TINY3 = ["data.n_train=300", "data.n_test=100", "model.width=32", "trainer.max_epochs=3"]


@pytest.fixture(autouse=True)
def _threads():
    """conftest pins torch to one thread; ``OMP_NUM_THREADS=2 pytest ...`` runs these
    tests with two (the numerics rule: 1 and 2 threads)."""
    before = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    yield
    torch.set_num_threads(before)


def losses(run_id: str) -> list[float]:
    return [m.value for m in get_client().get_metric_history(run_id, "train/loss")]


def rel(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) / max(abs(x), abs(y), 1e-12) for x, y in zip(a, b, strict=True))


# (name, the config's own overrides, a per-model override for the companions, batched?)
CASES = [
    ("bernoulli", ["model.dropout=0.3", "model.input_dropout=0.1"], "model.dropout=0.5", True),
    ("vanilla", ["model.dropout=0.3", "model.dropout_kind=vanilla"], "model.dropout=0.1", True),
    ("gaussian", ["model.dropout=0.3", "model.dropout_kind=gaussian"], "model.dropout=0", True),
    ("uout", ["model.dropout=0.3", "model.dropout_kind=uout"], "model.dropout=0.6", True),
    ("dropconnect", ["model.dropconnect=0.3"], "model.dropconnect=0.5", True),
    ("drop_path", ["model=resmlp", "model.depth=2"], "model.survival_last=0.8", True),
    (
        "drop_path_batch",
        ["model=resmlp", "model.depth=2", "model.drop_path_mode=batch"],
        "model.survival_last=0.8",
        True,
    ),
    ("mixup", ["reg=[mixup]", "reg.mixup.alpha=0.4"], "reg.mixup.alpha=1.0", True),
    ("augment1d", ["reg=[augment1d]"], "optim.lr=0.002", True),
    ("label_noise", ["data.label_noise=0.2"], "data.label_noise=0.1", True),
    # conv nets (1-D, batched on CPU): dropout inside, stochastic depth per sample, and
    # input dropout and augmentation on their (B, 1, L) and (B, L) inputs
    (
        "conv_dropout",
        ["model=wrn", "model.depth=10", "model.widen=1", "model.width=4", "model.dropout=0.3"],
        "model.dropout=0.1",
        True,
    ),
    (
        "conv_drop_path",
        ["model=resnet20", "model.width=4", "model.survival_last=0.5"],
        "model.survival_last=0.8",
        True,
    ),
    (
        "conv_input_dropout_augment1d",
        ["model=cnn1d", "model.width=4", "model.input_dropout=0.1", "reg=[augment1d]"],
        "model.input_dropout=0.2",
        True,
    ),
]


@pytest.mark.parametrize(("name", "own", "other", "batched"), CASES, ids=[c[0] for c in CASES])
def test_a_run_draws_the_same_alone_and_in_any_group(name, own, other, batched, tiny, experiment):
    cfg = tiny(*TINY3, *own, "seed=0", experiment_name=experiment)
    wider = 2 * int(cfg.model.width) if name.startswith("conv") else 48  # padded into a group
    mates = [
        tiny(*TINY3, *own, "seed=1", other, experiment_name=experiment),
        tiny(*TINY3, *own, "seed=5", other, experiment_name=experiment),
        tiny(*TINY3, *own, "seed=6", f"model.width={wider}", experiment_name=experiment),
    ]
    from regbench.train import run

    with recorded() as alone_draws:
        alone = run(cfg)
    with recorded() as a_draws:
        group_a = run_members([cfg, mates[0]], [[], []])
    with recorded() as b_draws:
        group_b = run_members([mates[2], mates[1], cfg], [[], [], []])
    ours_a, ours_b = group_a[0], group_b[2]
    client = get_client()
    tags = [client.get_run(r["run_id"]).data.tags for r in (alone, ours_a, ours_b)]
    want = "batched" if batched else "single: "
    assert all(t[EXEC_TAG].startswith(want) for t in tags[1:]), [t[EXEC_TAG] for t in tags]
    assert tags[0]["data.fingerprint"] == tags[1]["data.fingerprint"] == tags[2]["data.fingerprint"]

    [labels] = alone_draws.pop("label_noise")  # the run's noisy labels and their mask
    for log in (a_draws, b_draws):  # built among the companions' (and again if run alone)
        assert any(same(labels, other) for other in log.pop("label_noise"))
    mine = {k for k in alone_draws if k != "crop_flip"}
    assert mine or name == "label_noise", "the run drew nothing"
    for log in (a_draws, b_draws):
        assert mine <= set(log), "a draw of the run is missing in the group"
        assert all(same(alone_draws[k], log[k]) for k in mine), name

    a, b, single = losses(ours_a["run_id"]), losses(ours_b["run_id"]), losses(alone["run_id"])
    assert len(a) == len(b) == len(single) == 3
    gap, alone_gap = rel(a, b), rel(a, single)
    print(f"{name}: {len(mine)} draws bitwise; groups {gap:.1e}, alone {alone_gap:.1e}")
    assert rel(a, b) <= 1e-6, (a, b)
    assert rel(a, single) <= 1e-5, (a, single)


def test_crop_flip_draws_the_same_alone_and_among_other_runs(tiny, experiment):
    """Conv nets on images run one by one on CPU (the tag says why); the crops of a run
    are its own whatever runs beside it."""
    from regbench.train import run

    base = [
        "model=resnet20",
        "model.width=4",
        "data=random_images",
        "data.n_train=96",
        "data.n_test=32",
        "data.batch_size=32",
        "data.val_fraction=0",
        "reg=[crop_flip]",
        "trainer.max_epochs=3",
        "diag.enabled=false",
    ]
    cfg = tiny(*base, "seed=0", experiment_name=experiment)
    mate = tiny(*base, "seed=3", experiment_name=experiment)
    with recorded() as alone_draws:
        alone = run(cfg)
    with recorded() as group_draws:
        out = run_members([mate, cfg], [[], []])
    crops = alone_draws["crop_flip"]
    assert len(crops) == 9  # 3 steps a epoch, 3 epochs
    assert same(crops, group_draws["crop_flip"][9:])  # the mate's 9 come first
    tag = get_client().get_run(out[1]["run_id"]).data.tags[EXEC_TAG]
    assert tag.startswith("single: 2-D conv nets run one by one on CPU")
    assert rel(losses(alone["run_id"]), losses(out[1]["run_id"])) == 0.0

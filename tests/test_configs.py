"""Every file under conf/ composes and trains one batch, so no config rots.

Each option of each group (data, model, optim, scheduler, trainer, logger, reg), every
experiment and every variance-shift placement is composed on top of the defaults, built
by the real code (validation, model builder, regularizers) and fitted for one optimizer
step. Vision sets that need a download keep their real loader (checked with
``download=false`` on an empty folder: the one-line error naming the missing files)
and train on ``random_images`` of the same shape, class count and normalisation.
Models are shrunk (``model.width=8``), not changed. A test checks that these cases
cover every file under conf/.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from regbench.config import compose, register_resolvers
from regbench.data.vision import CLASSES, SHAPES
from regbench.errors import ConfigError
from regbench.paths import CONF_DIR
from regbench.train import build, make_trainer

GROUPS = ("data", "model", "optim", "scheduler", "trainer", "logger", "reg")
SMALL = [
    "data.batch_size=16",
    "model.width=8",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=1",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.progress_bar=false",
    "diag.enabled=false",
]


# Options that only make sense with other choices: crop + flip needs images, proximal L1
# a constant step size.
NEEDS = {"crop_flip": ["data=cifar10"], "l1_prox": ["scheduler=constant"]}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def cases() -> list[tuple[str, list[str]]]:
    out = [("train.yaml", [])]
    for group in GROUPS:
        pick = (lambda o: f"reg=[{o}]") if group == "reg" else (lambda o, g=group: f"{g}={o}")
        out += [(f"{group}/{o}.yaml", [pick(o), *NEEDS.get(o, [])]) for o in options(group)]
    out += [(f"experiment/{o}.yaml", [f"experiment={o}"]) for o in options("experiment")]
    out += [  # a reproduction's arm files, each composed onto its experiment
        (f"experiment/{sub}/{o}.yaml", [f"experiment={exp}", f"+experiment/{sub}={o}"])
        for sub, exp in ARM_GROUPS.items()
        for o in options(f"experiment/{sub}")
    ]
    return out


ARM_GROUPS = {
    "vs_placement": "variance_shift",
    "dmn_arm": "dropout_max_norm",
    "esw_arm": "early_stopping_width",
    "gnbn_batch": "gn_vs_bn_batch",
    "sd_arm": "stochastic_depth",
    "dc_arm": "dropconnect_vs_dropout",
    "wmi_arm": "weight_magnitude_importance",
    "aug_arm": "augmentation_overfitting",
    "aug_n": "augmentation_overfitting",
}


def small_data(cfg_data) -> list[str]:
    """Overrides that shrink the data; a vision set becomes random_images of its shape."""
    name = cfg_data.name
    if name in SHAPES:
        shape = ",".join(map(str, SHAPES[name]))
        return [
            "data=random_images",
            f"data.shape=[{shape}]",
            f"data.num_classes={CLASSES[name]}",
            f"data.like={name}",
            "data.n_train=48",
            "data.n_test=16",
        ]
    return ["data.n_train=48", "data.n_test=16"]


def fit_one_batch(overrides: list[str]) -> None:
    cfg = compose([*overrides, *SMALL])
    cfg = compose([*overrides, *SMALL, *small_data(cfg.data)])
    _, data, module = build(cfg)
    before = [p.detach().clone() for p in module.parameters()]
    trainer = make_trainer(cfg, logger=False, callbacks=module.reg.callbacks)
    trainer.fit(module, datamodule=data)
    assert trainer.global_step == 1  # one optimizer step
    moved = [not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True)]
    assert any(moved), "one optimizer step changed no parameter"
    assert all(torch.isfinite(p).all() for p in module.parameters())


REFUSED = {
    "experiment/epoch_double_descent.yaml": (
        "experiment=epoch_double_descent configures a reproduction, not a training run; "
        "use: regbench reproduce epoch_double_descent"
    ),
}


@pytest.mark.parametrize(("path", "overrides"), cases(), ids=[c[0] for c in cases()])
def test_every_config_composes_builds_and_trains_one_batch(path, overrides):
    if path in REFUSED:
        with pytest.raises(ConfigError, match=REFUSED[path]):
            fit_one_batch(overrides)
        return
    fit_one_batch(overrides)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_vision_loaders_keep_their_download_path(name, tmp_path):
    cfg = compose([f"data={name}", "data.download=false", f"data.data_dir={tmp_path}"])
    from regbench.data import build_data

    with pytest.raises(ConfigError, match=f"data.download=false and the {name} files are missing"):
        build_data(cfg.data, 0)


LAUNCHERS = sorted(p.stem for p in (CONF_DIR / "hydra/launcher").glob("*.yaml"))


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_hydra_launchers_compose(launcher):
    if launcher == "slurm":
        pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose("train", [f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert "_target_" in cfg.hydra.launcher


def test_the_cases_cover_every_file_under_conf():
    covered = {c[0] for c in cases()}
    covered |= {f"hydra/launcher/{name}.yaml" for name in LAUNCHERS}
    # shared keys, composed into every model and every vision data set above
    covered |= {"shared/model.yaml", "shared/vision.yaml"}
    files = {str(p.relative_to(CONF_DIR)) for p in Path(CONF_DIR).rglob("*.yaml")}
    assert files - covered == set()


@pytest.mark.parametrize(
    "overrides",
    [
        ["experiment=model_double_descent", "model.width=300"],
        ["model=resnet20", "data.label_noise=0.1"],
        ["+data.probe_seed=${seed}"],  # a value that reads the seed: composed per seed
    ],
)
def test_seeds_composed_once_are_the_configs_composed_per_seed(overrides):
    from regbench.config import compose_seeds

    seeds = [0, 3, 11]
    got = compose_seeds(overrides, seeds)
    assert got == [compose([*overrides, f"seed={s}"]) for s in seeds]
    assert [c.seed for c in got] == seeds
    if "probe_seed" in overrides[0]:
        assert [c.data.probe_seed for c in got] == seeds

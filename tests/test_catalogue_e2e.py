"""Every conf/reg/*.yaml trains end to end (so no config rots), the multi-select group
composes, and invalid settings fail before training with the key named."""

from __future__ import annotations

import pytest

from conftest import runs_of
from regbench.config import compose
from regbench.errors import ConfigError
from regbench.paths import CONF_DIR
from regbench.reg import build_regularizers
from regbench.tracking import get_client
from regbench.train import run

REG_CONFIGS = sorted(p.stem for p in (CONF_DIR / "reg").glob("*.yaml"))
#: configs that need image batches (B, C, H, W): run on tiny CIFAR-10 files with a ResNet
IMAGE_ONLY = {"crop_flip"}
FAST = ["trainer=fast", "trainer.max_epochs=1"]
#: configs that need another choice: proximal L1 a fixed step size
NEEDS = {"l1_prox": ["scheduler=constant"]}


def test_the_catalogue_has_every_family():
    for name in (
        "l1",
        "l2",
        "elastic_net",
        "max_norm",
        "frobenius_bound",
        "early_stopping",
        "label_smoothing",
        "mixup",
        "augment1d",
    ):
        assert name in REG_CONFIGS, name


@pytest.mark.parametrize("name", REG_CONFIGS)
def test_every_reg_config_trains_one_short_epoch(name, tiny, experiment, tmp_path, monkeypatch):
    overrides = [f"reg=[{name}]", *FAST, *NEEDS.get(name, [])]
    if name in IMAGE_ONLY:
        from test_resnet_train import write_tiny_cifar10

        write_tiny_cifar10(tmp_path, monkeypatch)
        cfg = compose(
            [
                *overrides,
                "data=cifar10",
                f"data.data_dir={tmp_path}",
                "data.download=false",
                "data.batch_size=25",
                "model=resnet20",
                "model.depth=8",
                "model.width=4",
                f"experiment_name={experiment}",
            ]
        )
    else:
        cfg = tiny(*overrides, experiment_name=experiment)
    out = run(cfg, overrides)
    [r] = runs_of(experiment)
    assert r.info.status == "FINISHED"
    # the logged total is the data loss plus the entry's own logged term (loss terms), or
    # the data loss alone (other kinds): a dropped, doubled or unlogged term fails here
    term = out.get(f"train/reg/{name}", 0.0)
    loss_term = name in build_regularizers(cfg, num_classes=10).penalties
    assert (f"train/reg/{name}" in out) == loss_term
    assert out["train/loss"] == pytest.approx(out["train/loss_data"] + term, rel=1e-5)
    # visible in the run's params (the flattened resolved config) and config.yaml
    entry = cfg.reg[name]
    for key in entry:
        assert f"reg.{name}.{key}" in r.data.params, key
    assert r.data.params[f"reg.{name}.kind"] == str(entry.kind)
    path = get_client().download_artifacts(r.info.run_id, "config.yaml", str(tmp_path))
    with open(path) as f:
        assert f"kind: {entry.kind}" in f.read()


def test_reg_is_a_multi_select_group_with_overridable_entries(tiny, experiment):
    cfg = compose(["reg=[l1,max_norm]", "reg.l1.strength=0.005", "reg.max_norm.c=2.5"])
    assert set(cfg.reg) == {"l1", "max_norm"}
    assert cfg.reg.l1 == {"kind": "l1", "strength": 0.005, "params": "weights"}
    assert cfg.reg.max_norm.c == 2.5
    assert not compose([]).get("reg")  # nothing selected by default
    out = run(
        tiny("reg=[l1,max_norm,label_smoothing,augment1d]", *FAST, experiment_name=experiment)
    )
    assert out["train/reg/l1"] > 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["reg=[l1]", "reg.l1.strength=-0.1"], "reg.l1.strength=-0.1 is out of range"),
        (["reg=[l2]", "reg.l2.strength=-1e-4"], "reg.l2.strength=-0.0001 is out of range"),
        (["reg=[elastic_net]", "reg.elastic_net.strength=-1"], "reg.elastic_net.strength=-1"),
        (["reg=[max_norm]", "reg.max_norm.c=-3"], "reg.max_norm.c=-3 is out of range"),
        (["model.dropout=1.0"], "model.dropout=1.0 is out of range; allowed: [0, 1)"),
        (["model.dropout=-0.2"], "model.dropout=-0.2 is out of range; allowed: [0, 1)"),
        (["model.input_dropout=1.5"], "model.input_dropout=1.5 is out of range"),
        (["model.dropconnect=-0.1"], "model.dropconnect=-0.1 is out of range"),
        (["model=resmlp", "model.survival_last=0"], "model.survival_last=0 is out of range"),
        (["model.norm=group", "model.norm_groups=3"], "model.norm_groups=3 does not divide"),
        (["model.test_mode=ensemble"], "model.test_mode='ensemble' is not valid"),
        (["diag.every_n_epochs=-1"], "diag.every_n_epochs=-1 is not valid"),
    ],
)
def test_invalid_settings_fail_before_training_naming_the_key(tiny, experiment, overrides, message):
    with pytest.raises(ConfigError) as e:
        run(tiny(*overrides, experiment_name=experiment))
    assert message in str(e.value)
    assert runs_of(experiment) == []  # no MLflow run was created

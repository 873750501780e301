"""Bad input through the real command line: one line naming the key, exit code 2, no
traceback, and no run left FINISHED or RUNNING in the MLflow store."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from regbench.cli import main
from regbench.tracking import get_client

SPEC = {"objective": {"metric": "val/acc"}, "n_trials": 1, "seeds": [0]}
LR = {"optim.lr": {"type": "float", "low": 1e-3, "high": 0.1, "log": True}}

# (command line, key the message must name); "{spec:...}" is a study file written per test
CASES = [
    ("train seed=abc", "seed='abc'"),
    ("train seed=-1", "seed=-1"),
    ("train seed=1.5", "seed=1.5"),
    ("train trainer.precision=13", "trainer.precision=13"),
    ("train reg=[crop_flip]", "reg=[crop_flip]"),
    ("train model=resnet20 reg=[crop_flip]", "reg=[crop_flip]"),
    ("train trainer.max_epochs=0", "trainer.max_epochs=0"),
    ("train trainer.accelerator=banana", "trainer.accelerator='banana'"),
    ("train trainer.devices=0", "trainer.devices=0"),
    ("train trainer.deterministic=maybe", "trainer.deterministic='maybe'"),
    ("train trainer.check_val_every_n_epoch=0", "trainer.check_val_every_n_epoch=0"),
    ("train trainer.gradient_clip_val=-1", "trainer.gradient_clip_val=-1"),
    ("train data.batch_size=0", "data.batch_size=0"),
    ("train data.n_train=abc", "data.n_train='abc'"),
    ("train data.val_fraction=1.5", "data.val_fraction=1.5"),
    ("train data.label_noise=2", "data.label_noise=2"),
    ("train logger.background=3", "logger.background=3"),
    ("train diag.every_n_epochs=-1", "diag.every_n_epochs=-1"),
    ("train model.width=0", "model.width=0"),
    ("train model.dropout=1.5", "model.dropout=1.5"),
    ("train model.norm=banana", "model.norm='banana'"),
    ("train model.foo=1", "model.foo"),
    ("train model=banana", "model=banana"),
    ("train optim.lr=-1", "optim.lr=-1"),
    ("train optim.betas=[2,3]", "optim.betas[0]=2"),
    ("train scheduler.eta_min=-1", "scheduler.eta_min=-1"),
    ("train experiment_name=", "experiment_name=''"),
    ("train seed=[", "seed=["),
    # issue 19, found by a new user: every rate finite, devices this machine has, every
    # job of a grid built before any trains, --cfg job like a run, hints without "+key"
    ("train optim.lr=inf", "optim.lr=inf"),
    ("train optim.eps=nan", "optim.eps=nan"),
    ("train reg=[l2] reg.l2.strength=inf", "reg.l2.strength=inf"),
    ("train trainer.accelerator=tpu", "trainer.accelerator='tpu' is not available"),
    ("train -m model.norm=batch,banana trainer.max_epochs=1", "model.norm='banana'"),
    ("train -m model.act=relu,banana trainer.max_epochs=1", "model.act='banana'"),
    ("train -m model=mlp,banana", "model=banana"),
    ("train -m model.block=[linear,act],[linear,bogus]", "model.block"),
    ("train -m model.dropout_kind=bernoulli,bogus", "model.dropout_kind='bogus'"),
    ("train -m model.init=kaiming,bogus", "model.init='bogus'"),
    ("train -m reg=[l1],[bogus]", "reg=bogus"),
    ("train -m model.widht=16,64 trainer.max_epochs=1", "did you mean model.width?"),
    ("train -m model.dropout=0.5,1.5", "model.dropout=1.5"),
    ("train -m seed=0,1,abc", "seed='abc'"),
    ("train --cfg job model.dropout=1.5", "model.dropout=1.5"),
    ("train --cfg job model.widht=64", "did you mean model.width?"),
    ("train reg.l1.strength=0.1", "select it with reg=[l1]"),
    ("train +reg.l1.strength=0.1", "select it with reg=[l1]"),
    ("train reg=[l2] reg.l1.strength=0.1", "select it with reg=[l2,l1]"),
    # the newcomer's walk: a typo in a selected entry's field, and in the group's name
    (
        "train reg=[l1] reg.l1.strenght=0.1",
        "reg.l1.strenght: unknown key; did you mean reg.l1.strength?",
    ),
    ("train regg=[l1]", "regg: unknown key; did you mean reg?"),
    ("train model.widht=64", "did you mean model.width?"),
    ("train optim.momentum=0.9", "optim=sgd"),
    ("doctor --family banana", "--family='banana'"),
    ("doctor --device tpu", "--device='tpu'"),
    ("doctor --threads 0", "--threads='0'"),
    ("doctor --timeout 0", "--timeout=0"),
    ("doctor --bogus", "--bogus"),
    ("sweep {spec:ok} seed=abc", "seed='abc'"),
    ("sweep {spec:ok} trainer.precision=13", "trainer.precision=13"),
    ("sweep {spec:ok} reg=[crop_flip]", "reg=[crop_flip]"),
    ("sweep {spec:ok} --n-jobs 0", "--n-jobs=0"),
    ("sweep {spec:ok} --timeout -5", "--timeout=-5"),
    ("sweep {spec:ok} --storage foo://bar", "--storage='foo://bar'"),
    ("sweep {spec:norm} ", "space.model.norm=banana"),
    ("sweep {spec:widthh}", "model.widthh"),
    ("sweep {spec:sampler}", "sampler.kind='banana'"),
    ("sweep {spec:yaml}", "not valid YAML at line 2"),
    ("sweep missing.yaml", "study file 'missing.yaml' not found"),
    ("reproduce banana", "reproduction='banana'"),
    ("reproduce variance_shift --scale huge", "--scale='huge'"),
    ("reproduce variance_shift --seeds 0", "--seeds=0"),
    ("reproduce variance_shift --n-jobs 0", "--n-jobs=0"),
    ("report banana", "reproduction='banana'"),
    ("report variance_shift --scale huge", "--scale='huge'"),
    # paper scale: no test trains it (cpu and tiny runs of it may exist in this session)
    ("report variance_shift --scale paper", "no runs of variance_shift at paper scale in "),
]

SPECS = {
    "ok": {**SPEC, "space": LR},
    "norm": {**SPEC, "space": {"model.norm": ["batch", "banana"]}},
    "widthh": {**SPEC, "space": {"model.widthh": [8, 16]}},
    "sampler": {**SPEC, "sampler": "banana", "space": LR},
}


def _args(line: str, tmp_path) -> list[str]:
    out = []
    for word in line.split():
        if word.startswith("{spec:"):
            name = word[6:-1]
            path = tmp_path / f"{name}.yaml"
            path.write_text("n_trials: [2\n" if name == "yaml" else yaml.safe_dump(SPECS[name]))
            word = str(path)
        out.append(word)
    return out


def _all_runs() -> set[str]:
    client = get_client()
    ids = [e.experiment_id for e in client.search_experiments()]
    return {r.info.run_id for r in client.search_runs(ids, max_results=5000)} if ids else set()


@pytest.mark.parametrize(("line", "key"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_before_any_run(line, key, tmp_path, capsys):
    before = _all_runs()
    capsys.readouterr()  # MLflow's lines on creating the test store's tables, if first
    with pytest.raises(SystemExit) as exit_:
        main(_args(line, tmp_path))
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    message = err.strip()
    assert message.startswith("regbench ")
    assert key in message, message
    assert "+" + key.split("=")[0] not in message  # never "add the typo as a new key"
    assert _all_runs() == before  # no run created: not FAILED, not even a grid's parent


def test_issue_cases_exit_2_with_one_line_from_the_installed_command(tmp_path):
    """The entry point as a user runs it: exit status 2 and a single stderr line."""
    env = {**os.environ, "REGBENCH_MLRUNS": str(tmp_path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "regbench.cli", "train", "trainer.precision=13"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "regbench train: trainer.precision=13 is not valid; choose one of Lightning's: 16, "
        "16-mixed, 16-true, 32, 32-true, 64, 64-true, bf16, bf16-mixed, bf16-true, "
        "transformer-engine, transformer-engine-float16"
    ]
    assert not (tmp_path / "mlflow.db").exists()  # no store touched, so no run


def test_every_batch_transform_is_checked_against_the_input_shape():
    """The compatibility check refuses exactly the transforms that cannot take the
    inputs: only crop_flip on MNIST-1D's flat (40,) vectors; every reg file passes on
    (C, L) signals and (C, H, W) images. A check that refused good configs would fail here."""
    from pathlib import Path

    from regbench.config import compose
    from regbench.errors import ConfigError
    from regbench.paths import CONF_DIR
    from regbench.validate import check_transforms

    refused = []
    needs = {"l1_prox": ["scheduler=constant"]}  # its own check: a fixed step size
    for name in sorted(p.stem for p in Path(CONF_DIR, "reg").glob("*.yaml")):
        cfg = compose([f"reg=[{name}]", *needs.get(name, [])])
        for shape in [(40,), (1, 40), (3, 32, 32)]:
            try:
                check_transforms(cfg, shape, 10)
            except ConfigError:
                refused.append((name, shape))
    assert refused == [("crop_flip", (40,))]


def test_issue_19_messages_in_full(capsys):
    """The exact lines a new user gets for the issue's cases."""
    expected = {
        "train optim.lr=inf": "optim.lr=inf is not valid; it must be a finite number",
        "train -m model.norm=batch,banana trainer.max_epochs=1": (
            "model.norm='banana' is not a known norm; choose one of: batch, group, instance, "
            "layer, none (job: model.norm=banana trainer.max_epochs=1)"
        ),
        "train -m model.widht=16,64 trainer.max_epochs=1": (
            "model.widht: unknown key; did you mean model.width? "
            "(job: model.widht=16 trainer.max_epochs=1)"
        ),
        "train --cfg job model.dropout=1.5": ("model.dropout=1.5 is out of range; allowed: [0, 1)"),
        "train reg.l1.strength=0.1": (
            "reg.l1.strength: l1 is not selected in reg; select it with reg=[l1] "
            "(then reg.l1.strength=0.1)"
        ),
    }
    for line, message in expected.items():
        with pytest.raises(SystemExit):
            main(line.split())
        assert capsys.readouterr().err == f"regbench train: {message}\n", line


def test_accelerators_offered_are_those_of_this_machine(capsys):
    import torch

    from regbench.validate import available_accelerators

    offered = available_accelerators()
    assert offered[:2] == ["auto", "cpu"]
    assert ("cuda" in offered) == ("gpu" in offered) == torch.cuda.is_available()
    with pytest.raises(SystemExit):
        main(["train", "trainer.accelerator=tpu"])
    assert capsys.readouterr().err == (
        "regbench train: trainer.accelerator='tpu' is not available on this machine; "
        f"choose one of: {', '.join(offered)}\n"
    )
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit) as exit_:
            main(["doctor", "--device", "cuda"])
        assert exit_.value.code == 2
        assert capsys.readouterr().err.splitlines() == [
            "regbench doctor: --device='cuda' is not available on this machine "
            "(torch.cuda.is_available() is False); choose from: auto, cpu"
        ]


def test_a_valid_grid_and_cfg_job_pass_the_checks(capsys):
    """The validator refuses exactly the bad jobs: the valid grid and --cfg job of the
    same keys pass (--cfg job prints the config and exits 0)."""
    from regbench.validate import check_grid

    assert check_grid(["model.norm=batch,layer", "model.dropout=0.0,0.5", "seed=0,1"]) == 8
    main(["train", "--cfg", "job", "model.dropout=0.5"])
    out = capsys.readouterr().out
    assert "dropout: 0.5" in out

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


def _live_runs() -> set[str]:
    client = get_client()
    ids = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(ids, "attributes.status != 'FAILED'", max_results=5000) if ids else []
    return {r.info.run_id for r in runs if r.info.status in ("FINISHED", "RUNNING")}


@pytest.mark.parametrize(("line", "key"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_before_any_run(line, key, tmp_path, capsys):
    before = _live_runs()
    with pytest.raises(SystemExit) as exit_:
        main(_args(line, tmp_path))
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert "Traceback" not in err
    [message] = [ln for ln in err.splitlines() if ln.startswith("regbench ")]
    assert key in message, message
    assert _live_runs() == before  # nothing trained, nothing left FINISHED or RUNNING


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
    for name in sorted(p.stem for p in Path(CONF_DIR, "reg").glob("*.yaml")):
        cfg = compose([f"reg=[{name}]"])
        for shape in [(40,), (1, 40), (3, 32, 32)]:
            try:
                check_transforms(cfg, shape, 10)
            except ConfigError:
                refused.append((name, shape))
    assert refused == [("crop_flip", (40,))]

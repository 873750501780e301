"""End-to-end ResNet runs through regbench.train.run, logged to MLflow: a 1-D ResNet on
MNIST-1D and a 2-D ResNet with crop + flip on tiny CIFAR-10 files written by the test."""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest

from conftest import runs_of
from regbench.config import compose
from regbench.tracking import get_client
from regbench.train import run


def _md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_tiny_cifar10(root, monkeypatch, n_per_batch: int = 20, n_test: int = 40) -> None:
    """cifar-10-batches-py in torchvision's pickle format: five train batches, a test
    batch and batches.meta. The published md5s cannot match made-up data, so the class's
    checksum table is pointed at these files' md5s (torchvision's own integrity check
    then runs on them unchanged)."""
    import torchvision.datasets as tvd

    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def batch(name: str, n: int) -> list:
        labels = rng.integers(0, 10, n)
        # Class-dependent brightness so the pixels carry some signal: (n, 3072) uint8.
        data = rng.integers(0, 128, (n, 3 * 32 * 32)) + 12 * labels[:, None]
        entry = {"batch_label": name, "labels": labels.tolist(), "data": data.astype(np.uint8)}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
        return [name, _md5(folder / name)]

    train = [batch(f"data_batch_{i}", n_per_batch) for i in range(1, 6)]
    test = [batch("test_batch", n_test)]
    names = [f"class{i}" for i in range(10)]
    meta = folder / "batches.meta"
    meta.write_bytes(pickle.dumps({"label_names": names, "num_vis": 3072}, protocol=2))
    monkeypatch.setattr(tvd.CIFAR10, "train_list", train)
    monkeypatch.setattr(tvd.CIFAR10, "test_list", test)
    monkeypatch.setattr(
        tvd.CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names", "md5": _md5(meta)}
    )


def test_tiny_cifar_files_load_as_uint8_images(tmp_path, monkeypatch):
    from regbench.data import build_data

    write_tiny_cifar10(tmp_path, monkeypatch)
    cfg = compose(["data=cifar10", f"data.data_dir={tmp_path}", "data.download=false"]).data
    s = build_data(cfg, seed=0)
    assert s.x_train.dtype.is_floating_point is False and s.x_train.shape == (90, 3, 32, 32)
    assert s.x_val.shape == (10, 3, 32, 32) and s.x_test.shape == (40, 3, 32, 32)
    assert s.num_classes == 10 and s.mean is not None


def test_resnet20_one_epoch_on_tiny_cifar_with_crop_flip(tmp_path, monkeypatch, experiment):
    write_tiny_cifar10(tmp_path, monkeypatch)
    overrides = [
        "data=cifar10",
        "model=resnet20",
        "model.depth=8",
        "model.width=4",
        "reg=[crop_flip]",
        "trainer.max_epochs=1",
        "data.batch_size=25",
    ]
    cfg = compose(
        [
            *overrides,
            f"data.data_dir={tmp_path}",
            "data.download=false",
            "trainer.progress_bar=false",
            f"experiment_name={experiment}",
        ]
    )
    out = run(cfg, overrides)
    [r] = runs_of(experiment)
    assert r.info.status == "FINISHED"
    assert r.data.params["model.name"] == "resnet_cifar"
    assert r.data.params["reg.crop_flip.kind"] == "crop_flip"
    assert r.data.params["reg.crop_flip.padding"] == "4"
    # stem 3*4*9 + 8 (BN); blocks 2*144 + 16, 288 + 576 + 32, 1152 + 2304 + 64; head 170
    assert r.data.tags["model.params"] == "5006"
    hist = get_client().get_metric_history(r.info.run_id, "train/loss")
    assert [m.step for m in hist] == [0]
    assert r.data.metrics["test/acc"] == pytest.approx(out["test/acc"])
    assert round(out["test/acc"] * 40) == pytest.approx(out["test/acc"] * 40, abs=1e-4)


def test_resnet1d_on_mnist1d_learns_in_two_epochs(tiny, experiment):
    cfg = tiny(
        "model=resnet20",
        "model.depth=8",
        "model.width=8",
        "optim.lr=3e-3",
        experiment_name=experiment,
    )
    out = run(cfg)
    [r] = runs_of(experiment)
    assert r.info.status == "FINISHED"
    assert r.data.params["model.dims"] == "auto"
    loss = [m.value for m in get_client().get_metric_history(r.info.run_id, "train/loss")]
    assert len(loss) == 2 and loss[1] < loss[0]
    # above chance (0.1) after two epochs, by 3 binomial standard deviations on the 60
    # validation samples (the train/acc epoch mean also averages the first, untrained steps)
    assert out["val/acc"] > 0.1 + 3 * (0.1 * 0.9 / 60) ** 0.5


def test_resnet1d_mnist1d_experiment_composes_and_runs_shrunk(experiment):
    overrides = [
        "experiment=resnet1d_mnist1d",
        "data.n_train=300",
        "data.n_test=100",
        "trainer=fast",
        "trainer.max_epochs=1",
        f"experiment_name={experiment}",
    ]
    cfg = compose(overrides)
    assert cfg.model.name == "resnet_cifar" and cfg.model.width == 32
    assert cfg.reg.augment1d.kind == "augment1d" and cfg.optim.name == "adam"
    out = run(cfg, overrides)
    [r] = runs_of(experiment)
    assert r.info.status == "FINISHED" and 0.0 <= out["test/acc"] <= 1.0

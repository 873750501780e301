"""Data: label noise, splits, batch order, fingerprints and torchvision loaders."""

from __future__ import annotations

import struct

import pytest
import torch
from omegaconf import OmegaConf

from regbench.data import build_data
from regbench.data.batches import TensorBatches
from regbench.data.noise import corrupt_labels


def mnist1d_cfg(**kw):
    base = {
        "name": "mnist1d",
        "n_train": 600,
        "n_test": 200,
        "generator_seed": 42,
        "val_fraction": 0.1,
        "label_noise": 0.0,
        "label_noise_mode": "replace",
        "batch_size": 50,
    }
    return OmegaConf.create({**base, **kw})


def test_label_noise_replaces_exact_fraction_with_other_classes():
    y = torch.arange(1000) % 10
    g = torch.Generator().manual_seed(0)
    noisy_y, mask = corrupt_labels(y, 0.15, 10, g)
    assert int(mask.sum()) == 150
    assert (noisy_y[mask] != y[mask]).all()  # always a *different* class
    assert (noisy_y[~mask] == y[~mask]).all()
    # Replacements are spread over all other classes (uniform: ~16.7 each of 150).
    counts = torch.bincount((noisy_y[mask] - y[mask]) % 10, minlength=10)
    assert counts[0] == 0 and (counts[1:] > 3).all()


def test_resampled_label_noise_draws_from_all_classes_with_the_given_probability():
    # the MNIST-1D notebook's procedure: with probability 0.15 a label is redrawn from all
    # 10 classes, so a redraw keeps the label 1 time in 10: 0.15 * 0.9 = 13.5% end up wrong
    n = 20000
    y = torch.arange(n) % 10
    noisy_y, wrong = corrupt_labels(y, 0.15, 10, torch.Generator().manual_seed(0), "resample")
    sd = (0.135 * 0.865 / n) ** 0.5
    assert abs(wrong.float().mean().item() - 0.135) < 4 * sd
    assert torch.equal(wrong, noisy_y != y)
    counts = torch.bincount(noisy_y[wrong], minlength=10).float()  # wrong labels: any class
    assert (counts / counts.sum() - 0.1).abs().max() < 0.02


def test_unknown_label_noise_mode_fails_before_training():
    from regbench.errors import ConfigError

    with pytest.raises(ConfigError, match=r"data.label_noise_mode='flip' is not valid; choose"):
        build_data(mnist1d_cfg(label_noise=0.1, label_noise_mode="flip"), seed=0)


def test_label_noise_is_reproducible_from_the_seed():
    y = torch.arange(500) % 10
    a = corrupt_labels(y, 0.2, 10, torch.Generator().manual_seed(1))[0]
    b = corrupt_labels(y, 0.2, 10, torch.Generator().manual_seed(1))[0]
    c = corrupt_labels(y, 0.2, 10, torch.Generator().manual_seed(2))[0]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_splits_are_disjoint_and_noise_only_touches_train():
    s = build_data(mnist1d_cfg(label_noise=0.2), seed=0)
    assert len(s.y_train) == 540 and len(s.y_val) == 60 and len(s.y_test) == 200
    assert int(s.noisy.sum()) == round(0.2 * 540)
    clean = build_data(mnist1d_cfg(), seed=0)
    # Same carving for the same seed; labels differ exactly where the noise mask says.
    assert torch.equal(s.x_train, clean.x_train) and torch.equal(s.y_val, clean.y_val)
    assert torch.equal(s.y_train != clean.y_train, s.noisy)
    # No train row appears in val.
    rows = {tuple(r.tolist()) for r in s.x_train}
    assert not any(tuple(r.tolist()) in rows for r in s.x_val)
    assert s.fingerprint() != clean.fingerprint()
    assert s.fingerprint() == build_data(mnist1d_cfg(label_noise=0.2), seed=0).fingerprint()


def test_batches_cover_every_sample_once_per_epoch_in_seeded_order():
    x = torch.arange(103).float().unsqueeze(1)
    y = torch.arange(103)
    b = TensorBatches(x, y, 10, shuffle=True, seed=5)
    assert len(b) == 11
    epoch0 = torch.cat([yb for _, yb in b])
    epoch1 = torch.cat([yb for _, yb in b])
    assert sorted(epoch0.tolist()) == list(range(103))
    assert not torch.equal(epoch0, epoch1)  # reshuffled each epoch
    again = TensorBatches(x, y, 10, shuffle=True, seed=5)
    assert torch.equal(torch.cat([yb for _, yb in again]), epoch0)
    assert all(torch.equal(xb.squeeze(1).long(), yb) for xb, yb in b)  # x and y stay paired


def _write_idx(path, array: torch.Tensor) -> None:
    magic = 2051 if array.dim() == 3 else 2049
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic))
        for d in array.shape:
            f.write(struct.pack(">I", d))
        f.write(array.to(torch.uint8).numpy().tobytes())


def test_mnist_loader_reads_torchvision_files(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (30, 28, 28), generator=g, dtype=torch.uint8)
    labels = torch.arange(30) % 10
    for prefix, sl in (("train", slice(0, 20)), ("t10k", slice(20, 30))):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", imgs[sl])
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels[sl])
    cfg = OmegaConf.create(
        {
            "name": "mnist",
            "data_dir": str(tmp_path),
            "download": False,
            "val_fraction": 0.25,
            "label_noise": 0.0,
            "label_noise_mode": "replace",
            "batch_size": 4,
        }
    )
    s = build_data(cfg, seed=0)
    assert s.x_train.shape == (15, 1, 28, 28) and s.x_train.dtype == torch.uint8
    assert s.x_test.shape == (10, 1, 28, 28) and torch.equal(s.x_test[:, 0], imgs[20:])
    assert s.num_classes == 10 and s.mean == (0.1307,)


def test_missing_files_without_download_name_the_path(tmp_path):
    from regbench.errors import ConfigError

    cfg = OmegaConf.create(
        {
            "name": "fashion_mnist",
            "data_dir": str(tmp_path / "nope"),
            "download": False,
            "val_fraction": 0.0,
            "label_noise": 0.0,
            "label_noise_mode": "replace",
            "batch_size": 4,
        }
    )
    with pytest.raises(ConfigError, match="data.download=false .* under .*nope"):
        build_data(cfg, seed=0)


def test_generating_mnist1d_leaves_torch_rng_untouched(tmp_path, monkeypatch):
    """A cache miss must not consume torch's global RNG: the first run in a fresh checkout
    would otherwise initialise its model differently from every later run."""
    import torch

    from regbench.data.mnist1d import load_mnist1d

    monkeypatch.setenv("REGBENCH_DATA", str(tmp_path))
    torch.manual_seed(123)
    expected = torch.rand(3)
    for case in ("miss", "hit"):  # generate + write, then read
        torch.manual_seed(123)
        load_mnist1d(n_train=50, n_test=20, seed=1)
        assert torch.equal(torch.rand(3), expected), case
    assert len(list((tmp_path / "mnist1d").glob("*.pt"))) == 1

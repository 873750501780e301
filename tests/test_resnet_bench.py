"""The ResNet-20 throughput bench (regbench.bench.resnet), shrunk."""

from __future__ import annotations

import re

import pytest
import torch

from regbench.bench.resnet import bench_config, bench_resnet20
from regbench.data import build_data


def test_bench_line_reports_throughputs_and_their_ratio():
    line = bench_resnet20(reps=1, n_images=64, batch_size=32, epochs=1)
    m = re.fullmatch(
        r"resnet20 images=64 batch=32 epochs=1 full_stack=(\d+)img/s \((\S+)s, run=(\S+)s\) "
        r"hand_loop=(\d+)img/s \((\S+)s\) ratio=(\S+)",
        line,
    )
    assert m, line
    f_ips, f, run_s, h_ips, h, ratio = (float(v) for v in m.groups())
    assert ratio == pytest.approx(f / h, rel=0.01)
    assert f_ips == pytest.approx(64 / f, rel=0.01, abs=1) and h_ips == pytest.approx(64 / h, abs=1)
    assert run_s >= f > 0


def test_bench_data_are_seeded_cifar_shaped_uint8():
    cfg = bench_config(n_images=32, batch_size=16, epochs=1)
    a, b = build_data(cfg.data, 0), build_data(cfg.data, 0)
    assert a.x_train.shape == (32, 3, 32, 32) and a.x_train.dtype == torch.uint8
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert len(a.y_val) == 0 and a.num_classes == 10
    assert cfg.reg.crop_flip.padding == 4 and cfg.model.name == "resnet_cifar"

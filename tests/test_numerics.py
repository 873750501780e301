"""The numerics check (issue 19): one training step's gradients of every model family
through every batch transform that applies, against float64, in worker processes with 1
and with 2 threads. A crash, a hang or a gradient beyond the tolerance fails, naming the
family, input, transform, width, threads and the worst parameter.

The machine's own ISA runs always. On a CPU with AVX-512 the check runs again under
``ONEDNN_MAX_CPU_ISA=AVX2``, the kernels an AVX2-only CPU takes (where issue 19's bug
lived); by hand: ``ONEDNN_MAX_CPU_ISA=AVX2 pytest tests/test_numerics.py``.
"""

from __future__ import annotations

import os
import sys
import textwrap

import pytest
import torch
from torch import nn

from regbench.numerics import plan, run_cases
from regbench.numerics.cases import FAMILIES, INPUTS, TRANSFORMS
from regbench.numerics.step import step_error

_OWN_ISA = torch.backends.cpu.get_cpu_capability()
ISAS = [None]  # None: the machine's own (or whatever ONEDNN_MAX_CPU_ISA already says)
if _OWN_ISA.startswith("AVX512") and not os.environ.get("ONEDNN_MAX_CPU_ISA"):
    ISAS.append("AVX2")


@pytest.fixture(scope="module")
def cases():
    return plan()


def test_every_family_meets_every_transform_its_inputs_take(cases):
    """The plan covers the issue's list: each family on its inputs, each transform that
    applies to them (crop_flip on images and (C, L) signals, augment1d on MNIST-1D)."""
    seen = {(c.family, c.inputs, c.transform) for c in cases}
    assert {f.name for f in FAMILIES} == {
        "mlp", "resmlp", "resnet20", "preresnet20", "resnet18", "wrn", "cnn1d"
    }  # fmt: skip
    for fam in FAMILIES:
        for inputs in fam.inputs:
            for t in INPUTS[inputs].transforms:
                assert (fam.name, inputs, t) in seen
    assert {c.transform for c in cases} == {"none", *TRANSFORMS}
    assert {"image", "mnist1d"} <= {c.inputs for c in cases if c.family == "resnet20"}
    assert min(c.width for c in cases if c.family == "resnet18") < 8


@pytest.mark.parametrize("isa", ISAS, ids=lambda i: f"isa={i or 'own'}")
@pytest.mark.parametrize("threads", [1, 2], ids=lambda t: f"threads={t}")
def test_one_step_gradients_match_float64(cases, threads, isa):
    outcomes, env = run_cases(cases, "cpu", threads, timeout_s=90, isa=isa)
    assert [o.case for o in outcomes] == cases
    bad = [o.describe() for o in outcomes if not o.ok]
    where = (
        f"{env.get('cpu')}, ATen {env.get('isa')}, "
        f"ONEDNN_MAX_CPU_ISA={env.get('onednn_max_cpu_isa') or 'unset'}, torch {env.get('torch')}"
    )
    assert not bad, f"{len(bad)} of {len(outcomes)} cases failed on {where}:\n" + "\n".join(bad)


class _WrongInFloat32(torch.autograd.Function):
    """Identity whose float32 backward triples the gradient: a stand-in for a kernel that
    computes the right thing in float64 and the wrong thing in float32."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return g * 3 if g.dtype == torch.float32 else g


class _Broken(nn.Module):
    def forward(self, x):
        return _WrongInFloat32.apply(x)


def test_a_wrong_float32_gradient_fails_naming_the_parameter():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv1d(1, 4, 3), _Broken(), nn.ReLU(), nn.Flatten(), nn.Linear(152, 10)
    )
    x, y = torch.randn(16, 1, 40), torch.arange(16) % 10
    res = step_error(model, x, y)
    assert res.parameter in ("0.weight", "0.bias")  # the conv before the broken backward
    assert res.error == pytest.approx(2.0, rel=1e-3)  # (3g - g) / g
    assert not res.ok and res.tolerance < 0.5
    fine = step_error(nn.Sequential(*[m for m in model if not isinstance(m, _Broken)]), x, y)
    assert fine.ok and fine.error < 1e-4


# A stand-in worker speaking the real protocol: it crashes on crop_flip cases (the real
# signal, SIGSEGV) and hangs on mixup ones; other cases get a fixed result.
FAKE_WORKER = textwrap.dedent(
    """
    import json, os, signal, sys, time
    job = json.load(sys.stdin)
    print("env", json.dumps({"cpu": "fake"}), flush=True)
    for i, case in enumerate(job["cases"]):
        print("start", i, flush=True)
        if case["transform"] == "crop_flip":
            sys.stderr.write("Fatal Python error: Segmentation fault\\n")
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGSEGV)
        if case["transform"] == "mixup":
            time.sleep(600)
        res = {"error": 1e-6, "parameter": "w", "tolerance": 0.1}
        print("result", i, json.dumps(res), flush=True)
    """
)


def test_a_crash_or_hang_fails_naming_the_case_and_the_rest_still_run():
    picked = [c for c in plan(["resnet18"]) if c.inputs == "image"]
    order = {"crop_flip": 0, "none": 1, "mixup": 2}
    picked.sort(key=lambda c: order[c.transform])  # crash, fine, hang
    outcomes, _ = run_cases(
        picked, "cpu", 2, timeout_s=5, worker=[sys.executable, "-c", FAKE_WORKER]
    )
    assert [o.verdict for o in outcomes] == ["CRASHED", "ok", "HUNG"]
    assert outcomes[0].describe() == (
        "resnet18 2-D crop_flip width=4 on cpu, 2 thread(s): crashed: SIGSEGV "
        "(Fatal Python error: Segmentation fault)"
    )
    assert outcomes[2].describe() == (
        "resnet18 2-D mixup width=4 on cpu, 2 thread(s): hung: no result in 5 s"
    )


def test_batches_reach_the_convolutions_contiguous():
    """The root cause of issue 19: a channels-last batch (crop_flip's gather made one)
    took oneDNN's NHWC path. crop_flip now returns NCHW/NCL, and the conv nets make any
    input contiguous before their first convolution."""
    from regbench.config import compose
    from regbench.nn import build_model
    from regbench.reg.augment_image import crop_flip

    g = torch.Generator().manual_seed(0)
    for shape in [(4, 3, 8, 8), (4, 2, 10)]:
        assert crop_flip(torch.randn(*shape), 2, True, generator=g).is_contiguous()
    layouts = []
    model = build_model(compose(["model=resnet18", "model.width=4"]).model, (3, 8, 8), 10)
    model.stem[0].register_forward_pre_hook(lambda m, a: layouts.append(a[0].is_contiguous()))
    model(torch.randn(4, 3, 8, 8).to(memory_format=torch.channels_last))
    assert layouts == [True]


def test_doctor_prints_the_table_exits_0_and_creates_no_run(tmp_path, monkeypatch, capsys):
    from regbench.cli import main

    monkeypatch.setenv("REGBENCH_MLRUNS", str(tmp_path))  # a store no one else writes
    main(["doctor", "--family", "cnn1d", "--device", "cpu", "--threads", "1"])
    lines = capsys.readouterr().out.splitlines()
    # family, input kind, input shape, transform, width, device, threads, error, tolerance,
    # verdict, worst parameter
    rows = [ln.split() for ln in lines if ln.startswith("cnn1d ")]
    assert [r[3] for r in rows] == ["none", "mixup", "augment1d", "crop_flip"]
    assert all(r[5:7] == ["cpu", "1"] and r[9] == "ok" for r in rows)
    assert all(float(r[7]) <= float(r[8]) for r in rows)  # error within its tolerance
    assert lines[-1].startswith("4 checks: 4 ok, 0 WRONG, 0 CRASHED, 0 HUNG")
    assert not any(tmp_path.iterdir())  # no MLflow store, no run


def test_doctor_exits_1_naming_each_failed_case(monkeypatch, capsys):
    import functools

    from regbench.numerics import doctor

    fake = functools.partial(run_cases, worker=[sys.executable, "-c", FAKE_WORKER])
    monkeypatch.setattr(doctor, "run_cases", fake)
    with pytest.raises(SystemExit) as exit_:
        doctor.main(["--family", "cnn1d", "--device", "cpu", "--threads", "2", "--timeout", "5"])
    assert exit_.value.code == 1
    out, err = capsys.readouterr()
    assert "4 checks: 2 ok, 0 WRONG, 1 CRASHED, 1 HUNG" in out
    assert err.splitlines()[1:] == [
        "  cnn1d 1-D mixup width=10 on cpu, 2 thread(s): hung: no result in 5 s",
        "  cnn1d 1-D crop_flip width=10 on cpu, 2 thread(s): crashed: SIGSEGV "
        "(Fatal Python error: Segmentation fault)",
    ]

"""Batched conv nets and per-batch stochastic depth (regbench.batched) against the same
runs one by one.

Each family trains as one program and gives the metrics ``train.run`` logs (keys, steps,
values), the same params and tags but ``regbench.exec``, and the same final weights,
buffers and BatchNorm counters. Which tolerance:

- The program sums a convolution's products in another order than oneDNN (one GEMM over
  C * k^d against a direct convolution): about 1e-7 relative per op in float32. Training
  amplifies such differences chaotically. Measured here on width-8 ResNet-20s, two
  epochs of SGD: ``train.run`` itself moves by 1e-6 for some seeds and by up to 1e-1
  (weights) for others when nothing but its convolution kernel changes (oneDNN against
  PyTorch's native im2col GEMM), a ReLU or BatchNorm decision on a rounding tie, then
  growth by about 2x a step. A float32 comparison of those families over epochs would
  measure that luck, not the program.
- So every family trains in float64 (``trainer.precision=64-true``: Lightning's
  DoublePrecision alone, the program in float64 in the group), where rounding is 1e-16
  and the same growth stays far below the tolerance :data:`REL64` = 1e-8 on the weights
  (measured gaps: at most 1e-12), over three epochs, with their schedules, validation,
  test, dropout masks and per-batch skips. The logged values are float32 either way (the
  module's epoch means are float32 sums): they agree to :data:`LOGGED` = 1e-6, a few
  float32 roundings;
- in float32, one step of every family (forward in both modes, every gradient) agrees
  within 1e-5 of the largest entry (rounding only), and the width-padded 1-D CNN of
  cnn_double_descent, well conditioned, trains three epochs within :data:`REL32` = 1e-5
  (the MLP groups' tolerance, tests/test_batched.py).

Diagnostics run in float32 (they feed float32 data), so the float64 runs turn them off.
"""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from regbench.batched.plan import EXEC_TAG, make_groups, unbatchable
from regbench.batched.program import StackedNet
from regbench.batched.runs import build_member, run_group, run_members
from regbench.tracking import get_client

REL64, REL32, LOGGED = 1e-8, 1e-5, 1e-6
BASE = ["data.n_train=300", "data.n_test=100", "optim=sgd", "trainer.max_epochs=3"]
F64 = ["trainer.precision=64-true", "diag.enabled=false"]
IMAGES = ["data=random_images", "data.n_train=96", "data.n_test=32", "data.batch_size=32"]

# family -> (overrides of every model, one override list per model)
FAMILIES = {
    "cnn1d": (["model=cnn1d", "data.label_noise=0.15"], [["model.width=6"], ["model.width=8"]]),
    "resnet20": (["model=resnet20", "model.width=8", "reg=[augment1d]"], [[], []]),
    "resnet32_conv_shortcut": (
        ["model=resnet32", "model.width=4", "model.shortcut=conv"],
        [[], []],
    ),
    "preresnet20_group_norm": (
        ["model=preresnet20", "model.width=8", "model.norm=group", "model.norm_groups=4"],
        [[], []],
    ),
    "resnet20_layer_norm_adamw": (
        ["model=resnet20", "model.width=8", "model.norm=layer", "optim=adamw"],
        [["optim.weight_decay=0.01"], ["optim.weight_decay=0.1"]],
    ),
    # instance norm over a few positions amplifies any difference ~3x a step at lr 0.1,
    # even in float64 (1e-16 -> 3e-7 in 18 steps, measured step by step against
    # train.run): a smaller rate keeps the comparison about the program
    "resnet20_instance_norm": (
        ["model=resnet20", "model.width=8", "model.norm=instance", "optim.lr=0.01"],
        [[], []],
    ),
    "resnet18_no_norm": (["model=resnet18", "model.width=4", "model.norm=none"], [[], []]),
    "wrn_dropout_kinds": (
        ["model=wrn", "model.depth=10", "model.widen=2", "model.width=4", "model.dropout=0.3"],
        [["model.dropout_kind=gaussian"], ["model.dropout_kind=gaussian", "model.dropout=0.1"]],
    ),
    "resnet20_stochastic_depth": (
        ["model=resnet20", "model.width=8", "model.input_dropout=0.1"],
        [["model.survival_last=0.5"], ["model.survival_last=1.0"]],
    ),
    "resmlp_batch_skip_sgd": (
        ["model=resmlp", "model.depth=3", "model.width=16", "model.drop_path_mode=batch"],
        [
            ["model.survival_last=0.5", "optim.weight_decay=0.01"],
            ["model.survival_last=0.7", "optim.weight_decay=0.001"],
        ],
    ),
    "resmlp_batch_skip_adam_l2": (
        ["model=resmlp", "model.depth=3", "model.width=16", "model.drop_path_mode=batch"]
        + ["optim=adam", "model.norm=none", "reg=[l2]", "reg.l2.params=weights"],
        [["model.survival_last=0.5"], ["model.survival_last=1.0"]],
    ),
}


class KeepWeights(pl.Callback):
    def on_train_end(self, trainer, pl_module) -> None:
        self.state = {k: v.detach().clone() for k, v in pl_module.model.state_dict().items()}


def gap(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-3)


def state_gap(a: dict, b: dict) -> float:
    """Largest difference of the float entries relative to each tensor's largest value;
    integer buffers (BatchNorm's counters) must be equal."""
    out = 0.0
    assert a.keys() == b.keys()
    for k, v in a.items():
        if not v.is_floating_point():
            assert torch.equal(v, b[k]), k
            continue
        scale = max(float(v.abs().max()), 1e-3)
        out = max(out, float((v - b[k].to(v.dtype)).abs().max()) / scale)
    return out


def run_gaps(single: dict, batched: dict, exec_tag: str | None = "batched") -> float:
    """The largest relative gap over every logged value (all steps); the rest of the
    run (params, name, tags but the exec tag, metric keys and steps) must be equal."""
    client, worst = get_client(), 0.0
    ra, rb = client.get_run(single["run_id"]), client.get_run(batched["run_id"])
    assert ra.data.params == rb.data.params
    assert ra.info.run_name == rb.info.run_name
    assert rb.data.tags.pop(EXEC_TAG, None) == exec_tag
    assert ra.data.tags == rb.data.tags
    assert set(single) == set(batched)
    for k in single:
        if k == "run_id" or k.startswith("time/"):  # wall times (a model's share of the group)
            continue
        ha = client.get_metric_history(single["run_id"], k)
        hb = client.get_metric_history(batched["run_id"], k)
        assert [m.step for m in ha] == [m.step for m in hb], k
        worst = max(
            [worst, gap(single[k], batched[k])]
            + [gap(x.value, y.value) for x, y in zip(ha, hb, strict=True)]
        )
    return worst


def configs(tiny, experiment, family: str, extra: list[str]) -> list:
    common, per_model = FAMILIES[family]
    return [
        tiny(*BASE, *common, *own, *extra, f"seed={s}", experiment_name=experiment)
        for s, own in enumerate(per_model)
    ]


def compare(cfgs, force: bool = False) -> tuple[float, float]:
    """Train ``cfgs`` alone and as one group; the largest gaps of the logged values and of
    the weights. ``force``: run the group's program where the CPU default is one by one."""
    from regbench.train import run

    singles = []
    for cfg in cfgs:
        keep = KeepWeights()
        singles.append((run(cfg, callbacks=[keep]), keep.state))
    members = [build_member(c, [], None) for c in cfgs]
    if not force:
        assert [unbatchable(m) for m in members] == [None] * len(cfgs)
    assert len(make_groups(members)) == 1
    logged = weights = 0.0
    for (res, state), m, out in zip(singles, members, run_group(members, None), strict=True):
        assert not isinstance(out, BaseException), out
        logged = max(logged, run_gaps(res, out))
        weights = max(weights, state_gap(state, m.model.state_dict()))
    return logged, weights


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_family_trains_as_alone_in_float64(family, tiny, experiment):
    cfgs = configs(tiny, experiment, family, F64)
    logged, weights = compare(cfgs)
    print(f"{family}: largest relative gaps: logged {logged:.1e}, weights {weights:.1e}")
    assert logged <= LOGGED and weights <= REL64, (logged, weights)


def test_images_train_as_alone_within_the_runs_own_rounding(tiny, experiment):
    """ResNet-20 on 32x32 images with crop_flip, the program CUDA runs (forced here on
    CPU, where the default is one by one), in float32: a float64 run on images fails
    alone (the data module's normalisation returns float32). The tolerance is the run's
    own sensitivity to rounding, measured: the gap between train.run with oneDNN's
    convolutions and with PyTorch's native ones; the group may be 10x that (at least
    the MLP groups' 1e-5)."""
    from regbench.train import run

    base = [*IMAGES, "model=resnet20", "model.width=4", "reg=[crop_flip]", "optim.lr=0.001"]
    cfgs = [tiny(*base, f"seed={s}", experiment_name=experiment) for s in (0, 1)]
    reference = 0.0
    for cfg in cfgs:
        keep, native = KeepWeights(), KeepWeights()
        a = run(cfg, callbacks=[keep])
        with torch.backends.mkldnn.flags(enabled=False):
            b = run(cfg, callbacks=[native])
        reference = max(
            reference, run_gaps(a, b, exec_tag=None), state_gap(keep.state, native.state)
        )
    logged, weights = compare(cfgs, force=True)
    bound = max(REL32, 10 * reference)
    print(f"images: gaps logged {logged:.1e}, weights {weights:.1e}; reference {reference:.1e}")
    assert logged <= bound and weights <= bound, (logged, weights, reference)


def test_the_double_descent_cnn_trains_as_alone_in_float32(tiny, experiment):
    """cnn_double_descent's setting: SGD with momentum, label noise, no val split, widths
    6 and 8 padded into one program; diagnostics on."""
    extra = ["data.val_fraction=0", "optim.momentum=0.9", "optim.lr=0.01"]
    logged, weights = compare(configs(tiny, experiment, "cnn1d", extra))
    print(f"cnn1d float32: largest relative gaps: logged {logged:.1e}, weights {weights:.1e}")
    assert logged <= REL32 and weights <= REL32, (logged, weights)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_one_float32_step_of_each_family_matches_its_models(family, tiny):
    """The program's forward (training and eval mode) and every gradient against each
    model's own, on one batch; stochastic layers and skips draw the same at one clock."""
    from regbench.batched.loop import GroupLoop
    from regbench.streams import TRAIN

    members = [build_member(c, [], None) for c in configs(tiny, None, family, [])]
    loop = GroupLoop(members, "cpu")
    x, y = loop.train.per_model()[:, :32], loop.train.y[:, :32]
    x = loop.prep(x)
    for training in (False, True):
        for clock in loop.clocks:
            clock.now = (TRAIN, 3)
        logits = loop.prog.forward(x, training)
        loop.prog.backward(sum(F.cross_entropy(logits[s], y[s]) for s in range(len(members))))
        grads = loop.prog.views(loop.prog.flat.grad)
        for s, m in enumerate(members):
            model = m.model.train(training)
            for clock in loop.clocks:
                clock.now = (TRAIN, 3)
            out = model(x[s])
            assert close_to(logits[s], out, out), (family, training, s)
            model.zero_grad(set_to_none=True)
            F.cross_entropy(out, y[s]).backward()
            params = list(model.parameters())
            scale = max(float(p.grad.abs().max()) for p in params if p.grad is not None)
            for g, p in zip(grads, params, strict=True):
                mine = g[(s, *[slice(0, n) for n in p.shape])]
                if p.grad is None:  # a block its per-batch DropPath dropped: no gradient
                    assert not mine.any(), (family, s)
                else:  # relative to the model's largest gradient: some are rounding only
                    assert close_to(mine, p.grad, scale), (family, training, s)


def close_to(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor | float) -> bool:
    """Within :data:`REL32` of ``scale`` (a tensor: its largest entry)."""
    scale = float(scale.abs().max()) if isinstance(scale, torch.Tensor) else scale
    return float((a - b).abs().max()) <= REL32 * scale


def test_a_diverging_conv_net_fails_alone(tiny, experiment):
    common = ["model=cnn1d", "model.width=8", "trainer.max_epochs=2", "data.val_fraction=0"]
    lrs = [0.01, 1e6, 0.02]
    cfgs = [
        tiny(*BASE, *common, f"seed={s}", f"optim.lr={lr}", experiment_name=experiment)
        for s, lr in enumerate(lrs)
    ]
    out = run_members(cfgs, [[f"lr={lr}"] for lr in lrs])
    assert isinstance(out[1], FloatingPointError)
    assert "train/loss became nan at epoch 0" in str(out[1])
    alone = run_members([cfgs[0], cfgs[2]], [["lr=0.01"], ["lr=0.02"]])
    for a, b in zip([out[0], out[2]], alone, strict=True):
        assert all(gap(a[k], b[k]) <= REL32 for k in a if k != "run_id" and "time/" not in k)
    status = get_client().get_run(out[1].run_id).info.status
    assert status == "FAILED"


def test_conv_nets_on_images_run_one_by_one_on_cpu_and_say_why(tiny, experiment):
    cfg = tiny(*IMAGES, "model=resnet20", "model.width=4", experiment_name=experiment)
    assert unbatchable(build_member(cfg, [], None)).startswith(
        "2-D conv nets run one by one on CPU"
    )
    mlp = tiny(*IMAGES, "model.width=16", experiment_name=experiment)
    assert (
        unbatchable(build_member(mlp, [], None)) is None
    )  # image MLPs batch: normalised per model


def test_padded_conv_channels_stay_exactly_zero(tiny):
    """cnn1d widths 4 and 9 in one program: the padded channels' weights and biases stay 0."""
    from regbench.batched.loop import GroupLoop

    cfgs = [tiny("model=cnn1d", f"model.width={w}", "optim=sgd") for w in (4, 9)]
    loop = GroupLoop([build_member(c, [], None) for c in cfgs], "cpu")
    loop.fit(lambda *a: None, lambda *a: None, 0, None)
    mask, flat = loop.prog.mask, loop.prog.flat.detach()
    assert mask is not None and float(mask.min()) == 0.0
    assert float((flat * (1 - mask)).abs().max()) == 0.0
    assert float((flat * mask).abs().max()) > 0.0


def test_stacked_net_rejects_different_architectures(tiny):
    a = build_member(tiny("model=resnet20", "model.width=4"), [], None)
    b = build_member(tiny("model=preresnet20", "model.width=4"), [], None)
    with pytest.raises(ValueError, match="do not share one batched signature"):
        StackedNet([a.model, b.model], "cpu")

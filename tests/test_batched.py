"""Batched groups (regbench.batched) against the same runs trained one by one.

Exactness: the deterministic configs of a group, trained as one program, give the weights
and every logged metric (keys, steps, values) of ``train.run`` within 1e-5 relative; the
MLflow runs carry the same params and tags but the path tag. Padding stays exactly zero;
a diverging model fails alone; what cannot batch runs one by one and says so. Stochastic
layers: test_batched_random.py; grids through the sweep machinery: test_batched_grid.py.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from conftest import runs_of
from regbench.batched.plan import EXEC_TAG, make_groups, unbatchable
from regbench.batched.runs import build_member, run_group, run_members
from regbench.tracking import get_client

REL = 1e-5
MD = ["experiment=model_double_descent", "trainer.max_epochs=3", "data.n_train=600"]


class KeepWeights(pl.Callback):
    def on_train_end(self, trainer, pl_module) -> None:
        self.state = {k: v.detach().clone() for k, v in pl_module.model.state_dict().items()}


def close(a: float, b: float) -> bool:
    return abs(a - b) <= REL * max(abs(a), abs(b)) + 1e-7


def single_runs(cfgs):
    from regbench.train import run

    out = []
    for cfg in cfgs:
        keep = KeepWeights()
        out.append((run(cfg, callbacks=[keep]), keep.state))
    return out


def assert_same_runs(single: dict, batched: dict) -> None:
    client = get_client()
    assert set(single) == set(batched)
    for k in single:  # time/*: wall times (a batched model logs its share of the group's)
        if k != "run_id" and not k.startswith("time/"):
            assert close(single[k], batched[k]), (k, single[k], batched[k])
    ra, rb = client.get_run(single["run_id"]), client.get_run(batched["run_id"])
    assert ra.data.params == rb.data.params
    assert ra.info.run_name == rb.info.run_name
    assert rb.data.tags.pop(EXEC_TAG) == "batched"
    assert ra.data.tags == rb.data.tags
    for k in single:
        if k == "run_id":
            continue
        ha = client.get_metric_history(single["run_id"], k)
        hb = client.get_metric_history(batched["run_id"], k)
        assert [m.step for m in ha] == [m.step for m in hb], k
        if not k.startswith("time/"):
            assert all(close(x.value, y.value) for x, y in zip(ha, hb, strict=True)), k


def check_group(cfgs) -> None:
    members = [build_member(c, [], None) for c in cfgs]
    assert [unbatchable(m) for m in members] == [None] * len(cfgs)
    assert len(make_groups(members)) == 1  # one program for the whole group
    batched = run_group(members, None)
    for (res, weights), m, out in zip(single_runs(cfgs), members, batched, strict=True):
        assert_same_runs(res, out)
        for k, v in m.model.state_dict().items():
            assert torch.allclose(v, weights[k], rtol=REL, atol=1e-7), k


def test_seeds_widths_and_rates_of_the_double_descent_mlp_match_one_by_one(tiny, experiment):
    """SGD with momentum, constant rate, no val split; widths padded; per-model lr and
    label noise."""
    points = [(0, 8, 0.01, 0.15), (1, 16, 0.02, 0.0), (2, 32, 0.005, 0.15)]
    cfgs = [
        tiny(
            *MD,
            f"seed={s}",
            f"model.width={w}",
            f"optim.lr={lr}",
            f"data.label_noise={n}",
            experiment_name=experiment,
        )
        for s, w, lr, n in points
    ]
    check_group(cfgs)


def test_default_adam_cosine_mlp_with_layer_norm_matches(tiny, experiment):
    """Adam + cosine schedule + val split (the default), LayerNorm, coupled weight decay
    that differs per model."""
    cfgs = [
        tiny(
            "model.norm=layer", f"seed={s}", f"optim.weight_decay={wd}", experiment_name=experiment
        )
        for s, wd in [(0, 0.0), (1, 0.01)]
    ]
    check_group(cfgs)


def test_adamw_group_norm_elastic_net_and_frobenius_bound_match(tiny, experiment):
    """Decoupled weight decay with biases and norm parameters exempt, GroupNorm."""
    extra = ["optim=adamw", "optim.no_decay_bias_norm=true", "model.norm=group"]
    extra += ["model.norm_groups=4", "reg=[elastic_net,frobenius_bound]", "reg.frobenius_bound.c=2"]
    cfgs = [
        tiny(*extra, f"seed={s}", f"optim.weight_decay={wd}", experiment_name=experiment)
        for s, wd in [(0, 0.05), (1, 0.2)]
    ]
    check_group(cfgs)


def test_sgd_batchnorm_with_penalties_constraints_and_smoothing_matches(tiny, experiment):
    """BatchNorm with SGD: a linear bias right before BN gets a gradient that is pure
    rounding noise (BN removes the mean), which Adam's normalisation blows up to lr-sized
    steps, so BN + Adam is compared on the function, not bitwise (the padding test)."""
    extra = ["model.norm=batch", "optim=sgd", "reg=[l1,max_norm,label_smoothing]"]
    cfgs = [
        tiny(*extra, "reg.max_norm.c=1.0", f"seed={s}", f"reg.l1.strength={a}", f"model.width={w}")
        for s, a, w in [(0, 1e-4, 32), (1, 1e-3, 24)]
    ]
    for c in cfgs:
        c.experiment_name = experiment
    check_group(cfgs)


def test_residual_mlp_padded_widths_match(tiny, experiment):
    """Pre-activation residual blocks (BatchNorm, SGD), widths 16 and 24 padded."""
    extra = ["model=resmlp", "model.depth=2", "model.survival_last=1.0", "optim=sgd"]
    cfgs = [
        tiny(*extra, f"seed={s}", f"model.width={w}", experiment_name=experiment)
        for s, w in [(0, 16), (1, 24)]
    ]
    check_group(cfgs)


def test_padded_units_stay_exactly_zero(tiny):
    """sigmoid(0) = 0.5 and BN's beta would move padding if its gradients were not masked."""
    from regbench.batched.loop import GroupLoop

    cfgs = [tiny("model.act=sigmoid", "model.norm=batch", f"model.width={w}") for w in (4, 16)]
    members = [build_member(c, [], None) for c in cfgs]
    loop = GroupLoop(members, "cpu")
    loop.fit(lambda *a: None, lambda *a: None, 0, None)
    mask, flat = loop.prog.mask, loop.prog.flat.detach()
    assert mask is not None and float(mask.min()) == 0.0, "widths 4 and 16 must be padded"
    assert float((flat * (1 - mask)).abs().max()) == 0.0
    assert float((flat * mask).abs().max()) > 0.0


def test_models_reading_the_same_inputs_share_one_copy_and_train_the_same(tiny):
    """Seeds of one data set keep one copy of the training inputs; an epoch from it is
    bitwise the epoch from S stacked copies (the gather is a copy either way). Different
    inputs are not shared."""
    from regbench.batched.loop import GroupLoop, Stacked

    def epoch(share: bool):
        torch.manual_seed(0)
        cfgs = [tiny("data.val_fraction=0", f"seed={s}") for s in range(3)]  # one train set
        loop = GroupLoop([build_member(c, [], None) for c in cfgs], "cpu")
        assert loop.train.shared and loop.train.x.shape[0] == 1
        if not share:
            loop.train = Stacked(loop.train.per_model().contiguous(), loop.train.y)
        out = [loop.train_epoch(e) for e in range(2)]
        return out, loop.prog.flat.detach()

    (a, wa), (b, wb) = epoch(True), epoch(False)
    assert torch.equal(wa, wb)
    assert all(torch.equal(x[k], y[k]) for x, y in zip(a, b, strict=True) for k in x)
    members = [build_member(tiny(f"seed={s}"), [], None) for s in range(2)]  # seeded splits
    assert not torch.equal(members[0].splits.x_train, members[1].splits.x_train)
    assert not Stacked.of(members, "train", "cpu", share=True).shared


def test_a_diverging_model_fails_alone(tiny, experiment):
    lrs = [0.01, 1e6, 0.02]
    cfgs = [
        tiny(*MD, "trainer.max_epochs=2", f"seed={s}", f"optim.lr={lr}", experiment_name=experiment)
        for s, lr in enumerate(lrs)
    ]
    out = run_members(cfgs, [[f"lr={lr}"] for lr in lrs])
    assert isinstance(out[1], FloatingPointError)
    assert "train/loss became nan at epoch 0" in str(out[1])
    alone = run_members([cfgs[0], cfgs[2]], [["lr=0.01"], ["lr=0.02"]])
    for a, b in zip([out[0], out[2]], alone, strict=True):
        assert all(close(a[k], b[k]) for k in a if k != "run_id" and not k.startswith("time/"))
    by_id = {r.info.run_id: r for r in runs_of(experiment)}
    failed = by_id[out[1].run_id]
    assert failed.info.status == "FAILED"
    assert failed.data.tags["error"].startswith("FloatingPointError: train/loss became nan")
    assert by_id[out[0]["run_id"]].info.status == "FINISHED"


def test_what_cannot_batch_runs_one_by_one_and_says_so(tiny, experiment):
    cfg = tiny("reg=[early_stopping]", "trainer.max_epochs=1", experiment_name=experiment)
    assert "early_stopping" in unbatchable(build_member(cfg, [], None))
    mix = tiny("reg=[mixup,augment1d]", "trainer.max_epochs=1", experiment_name=experiment)
    res, mixed = run_members([cfg, mix], [[], []])
    tag = get_client().get_run(res["run_id"]).data.tags[EXEC_TAG]
    assert tag.startswith("single: reg.early_stopping runs one by one: EarlyStoppingBest")
    assert get_client().get_run(mixed["run_id"]).data.tags[EXEC_TAG] == "batched"


def test_only_per_model_keys_may_differ_inside_a_group():
    # `model.dropout_kind` changes the program (inverted vs vanilla): it must split groups,
    # though `model.dropout` (a rate) is a prefix of its name
    from regbench.batched.plan import per_model

    assert per_model("model.dropout") and per_model("scheduler.eta_min")
    assert not per_model("model.dropout_kind") and not per_model("model.depth")


def _step_grads(loop, direct: bool) -> torch.Tensor:
    """One training step's (S, P) gradient, written by the products or through autograd."""
    import torch.nn.functional as F

    from regbench.streams import TRAIN

    loop.prog.use_direct_grads(direct, min_entries=0)
    for clock in loop.clocks:
        clock.now = (TRAIN, 0)
    x, y = loop.prep(loop.train.per_model()[:, :50]), loop.train.y[:, :50]
    logits = loop.prog.forward(x, training=True)
    S = logits.shape[0]
    loop.prog.backward(sum(F.cross_entropy(logits[s], y[s]) for s in range(S)))
    return loop.prog.flat.grad.clone()


def test_direct_gradients_are_autograds_and_only_where_every_parameter_is_a_product(tiny):
    """The products' written-out gradients (batched/conv.py ``Product``, ``_Conv``) equal
    autograd's bitwise, padded widths and dropout masks included; programs where a loss
    term or a norm's affine parameters read the parameters keep autograd's."""
    from regbench.batched.loop import GroupLoop

    cases = {  # overrides of both models -> whether the program writes its gradients
        ("model.dropout=0.3",): True,
        ("model=cnn1d",): True,
        ("model.norm=batch",): False,  # BN's weight and bias are not a product's
        ("reg=[l2]", "reg.l2.strength=0.01"): False,  # a loss term reads the weights
        ("model.dropconnect=0.2",): False,  # masked weights
    }
    for extra, direct in cases.items():
        cfgs = [tiny(*extra, f"model.width={w}", f"seed={s}") for s, w in enumerate((6, 8))]
        loop = GroupLoop([build_member(c, [], None) for c in cfgs], "cpu")
        assert not loop.prog.direct, "tiny programs keep autograd's (program.DIRECT_MIN)"
        loop.prog.use_direct_grads(not bool(loop.covered.any()), min_entries=0)
        assert loop.prog.direct is direct, extra
        if direct:
            written, autograd = _step_grads(loop, True), _step_grads(loop, False)
            assert float(autograd.abs().max()) > 0.0
            assert torch.equal(written, autograd), (extra, (written - autograd).abs().max())

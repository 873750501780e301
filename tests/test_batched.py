"""Batched groups (regbench.batched) against the same runs trained one by one.

Exactness: the deterministic configs of a group, trained as one program, give the weights
and every logged metric (keys, steps, values) of ``train.run`` within 1e-5 relative; the
MLflow runs carry the same params and tags but the path tag. Padding stays exactly zero;
dropout masks have each model's own rate and are independent across models; a diverging
model fails alone.
"""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch

from conftest import TINY, runs_of
from regbench.batched.plan import EXEC_TAG, make_groups, unbatchable
from regbench.batched.program import dropout
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
    for k in single:
        if k != "run_id":
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


def test_seeds_widths_and_rates_of_the_double_descent_mlp_match_one_by_one(tiny):
    """SGD with momentum, constant rate, no val split; widths padded; per-model lr and
    label noise."""
    points = [(0, 8, 0.01, 0.15), (1, 16, 0.02, 0.0), (2, 32, 0.005, 0.15)]
    cfgs = [
        tiny(*MD, f"seed={s}", f"model.width={w}", f"optim.lr={lr}", f"data.label_noise={n}")
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


def test_dropout_masks_per_model_rate_and_independent():
    torch.manual_seed(0)
    rates = torch.tensor([0.1, 0.5, 0.8]).view(-1, 1, 1)
    n = 200_000
    out = dropout("bernoulli", torch.ones(3, 1, n), rates, training=True)
    for s, r in enumerate(rates.flatten().tolist()):
        kept = out[s] != 0
        keep, sd = 1 - r, math.sqrt(r * (1 - r) / n)
        assert abs(float(kept.float().mean()) - keep) < 5 * sd
        assert torch.allclose(out[s][kept], torch.tensor(1 / keep))  # inverted scaling
    both = ((out[1] != 0) & (out[2] != 0)).float().mean()
    p = 0.5 * 0.2
    assert abs(float(both) - p) < 5 * math.sqrt(p * (1 - p) / n)  # independent masks
    g = dropout("gaussian", torch.ones(3, 1, n), rates, training=True)
    for s, r in enumerate(rates.flatten().tolist()):
        assert abs(float(g[s].var()) / (r / (1 - r)) - 1) < 0.02
    assert torch.equal(dropout("bernoulli", torch.ones(3, 2, 5), rates, False), torch.ones(3, 2, 5))
    # DropPath (rate = 1 - survival): one draw per (model, sample), no rescaling; eval * p
    d = dropout("path", torch.ones(3, n, 4), rates, training=True)
    assert torch.equal(d, d[:, :, :1].expand_as(d)) and set(d.unique().tolist()) == {0.0, 1.0}
    for s, r in enumerate(rates.flatten().tolist()):
        assert abs(float(d[s, :, 0].mean()) - (1 - r)) < 5 * math.sqrt(r * (1 - r) / n)
    assert torch.allclose(dropout("path", torch.ones(3, 1, 1), rates, False), 1 - rates)


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
        assert all(close(a[k], b[k]) for k in a if k != "run_id")
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
    assert get_client().get_run(res["run_id"]).data.tags[EXEC_TAG] == "single"
    assert get_client().get_run(mixed["run_id"]).data.tags[EXEC_TAG] == "batched"


def test_mixup_per_model_alpha():
    """Each model its own lam ~ Beta(a, a) and pairing: the batch mean and the target
    totals are kept exactly; the variance shrinks by E[lam^2 + (1 - lam)^2] =
    1 - a / (2a + 1) (0.857 for a = 0.2, 0.6 for a = 2)."""
    from regbench.batched.transforms import mixup

    torch.manual_seed(0)
    alpha = torch.tensor([0.2, 2.0])
    x, y = torch.randn(2, 1000, 1), torch.randint(0, 10, (2, 1000))
    ratios = []
    for _ in range(300):
        xm, t = mixup(x, y, alpha, 10)
        assert torch.allclose(xm.mean(1), x.mean(1), atol=1e-5)
        assert torch.allclose(t.sum(1), torch.nn.functional.one_hot(y, 10).float().sum(1))
        ratios.append(xm.var(1).squeeze(-1) / x.var(1).squeeze(-1))
    mean = torch.stack(ratios).mean(0)
    assert abs(float(mean[0]) - 0.857) < 0.02 and abs(float(mean[1]) - 0.6) < 0.02


def test_run_grid_batched_matches_one_by_one_and_fails_per_seed(tmp_path, monkeypatch):
    from regbench.sweep import run_grid

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    base = [*TINY, "optim=sgd", "trainer.max_epochs=2", "data.n_train=300"]
    grid = {"model.width": [8, 16], "optim.lr": [0.05, 1.0e30]}
    out = {}
    for mode in ("1", "0"):
        monkeypatch.setenv("REGBENCH_BATCHED", mode)
        exp = f"grid-batched-{mode}-{tmp_path.name}"
        out[mode] = run_grid(f"g{mode}", base, grid, [0, 1], 1, exp, url)
    client = get_client()
    for b, s in zip(out["1"], out["0"], strict=True):
        assert b["point"] == s["point"] and b["seed"] == s["seed"]
        if b["point"]["optim.lr"] > 1:  # diverges: every seed fails, with its reason
            assert b["state"] == "FAIL" and "FloatingPointError: train/loss became" in b["error"]
            assert client.get_run(b["run_id"]).info.status == "FAILED"
            continue
        assert b["state"] == s["state"] == "COMPLETE"
        rb, rs = client.get_run(b["run_id"]).data, client.get_run(s["run_id"]).data
        assert (rb.tags[EXEC_TAG], rs.tags[EXEC_TAG]) == ("batched", "single")
        assert set(rb.tags) == set(rs.tags)  # sweep.study/trial/seed, parent, environment
        assert rb.params.pop("experiment_name") != rs.params.pop("experiment_name")
        assert rb.params == rs.params
        assert all(close(b["metrics"][k], s["metrics"][k]) for k in s["metrics"])


def test_a_killed_batched_grid_resumes(experiment, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    import optuna
    import yaml
    from optuna.trial import TrialState

    from regbench.sweep import run_study
    from regbench.sweep.spec import parse_spec

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    raw = {
        "name": "kb",
        "experiment_name": experiment,
        "objective": {"metric": "val/acc"},
        "seeds": [0, 1],
        "sampler": "grid",
        "heartbeat": {"interval": 1, "grace_period": 2},
        "overrides": [*TINY, "trainer.max_epochs=150", "optim=sgd"],
        "space": {"model.width": {"type": "categorical", "choices": [8, 16]}},
    }
    path = tmp_path / "kb.yaml"
    path.write_text(yaml.safe_dump(raw))
    log = open(tmp_path / "sweep.log", "w")  # noqa: SIM115
    cmd = [sys.executable, "-m", "regbench.cli", "sweep", str(path), "--storage", url]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:  # kill while the group trains (its runs exist and have logged an epoch)
        deadline = time.time() + 300
        while True:
            assert proc.poll() is None and time.time() < deadline, (
                tmp_path / "sweep.log"
            ).read_text()
            running = [
                r
                for r in runs_of(experiment)
                if r.info.status == "RUNNING" and "train/loss" in r.data.metrics
            ]
            if running:
                break
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert running[0].data.tags[EXEC_TAG] == "batched"
    before = optuna.load_study(study_name="kb", storage=url).trials
    assert TrialState.RUNNING in [t.state for t in before]
    study = run_study(parse_spec(raw, "kb"), storage=url, verbose=False)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert sorted(t.params["model.width"] for t in complete) == [8, 16]
    runs = runs_of(experiment)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    children = [r for r in runs if r.data.tags.get("sweep.role") != "parent"]
    assert sum(r.info.status == "FINISHED" for r in children) == 4
    assert all(r.info.status in ("FINISHED", "KILLED", "FAILED") for r in children)


def test_dropconnect_masks_per_model_rate(tiny):
    """Each model masks its own weights at its own rate: with all weights 1 and inputs 1,
    a unit's output is 1 + (kept inputs) / keep, so its mean kept fraction is keep."""
    from regbench.batched.program import StackedMLP

    rates = [0.2, 0.7]
    members = [build_member(tiny(f"model.dropconnect={r}"), [], None) for r in rates]
    prog = StackedMLP([m.model for m in members], "cpu")
    with torch.no_grad():
        prog.flat.fill_(1.0)
    prog.params = prog.views(prog.flat)  # as every forward does
    i, (tok, op) = next((i, o) for i, o in enumerate(prog.ops) if o[0].startswith("linear"))
    assert "dc=True" in tok
    torch.manual_seed(0)
    x = torch.ones(2, 200, 40)  # (S, B, in): one mask per pass, shared by the batch
    kept = torch.stack([prog._apply(i, tok, op, x, True)[:, 0] for _ in range(50)])
    for s, r in enumerate(rates):
        frac = ((kept[:, s] - 1) * (1 - r) / 40).mean()
        assert abs(float(frac) - (1 - r)) < 0.01
    assert torch.equal(prog._apply(i, tok, op, x, False), torch.full((2, 200, 32), 41.0))

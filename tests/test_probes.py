"""Test-time probes (regbench.probes): unit ablation, pruning, activation statistics,
ensembles and Monte-Carlo dropout; their config under ``diag:``; ``model.init_scale``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import runs_of
from regbench.diagnostics import EvalData
from regbench.errors import ConfigError
from regbench.probes.ablation import ablated_accuracy, unit_mask
from regbench.probes.activations import activation_stats, activations_probe
from regbench.probes.ensemble import ensemble_probs, mc_dropout_probs, nll_error
from regbench.probes.evaluation import eval_accuracy
from regbench.probes.pruning import magnitude_indices, pruned_copy, pruning_probe
from regbench.probes.seeding import generator
from regbench.probes.suite import probe_suite
from regbench.reg.dropout import BernoulliDropout, VanillaDropout


def net(seed: int = 0, drop: float = 0.0) -> nn.Sequential:
    """40 -> 32 -> ReLU -> (dropout) -> 16 -> ReLU -> 10, deterministic weights."""
    g = torch.Generator().manual_seed(seed)
    m = nn.Sequential(
        nn.Linear(40, 32), nn.ReLU(), BernoulliDropout(drop), nn.Linear(32, 16), nn.ReLU(),
        nn.Linear(16, 10),
    )  # fmt: skip
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return m.eval()


def batches(n: int = 300, seed: int = 1) -> EvalData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 40, generator=g)
    y = net(seed=5)(x).argmax(1)  # labels a different net predicts: accuracy well inside (0, 1)
    return EvalData(x, y, 128, "cpu")


def outputs(m: nn.Module, data: EvalData) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([m(x) for x, _ in data])


def test_streams_depend_on_seed_and_purpose_only():
    a = torch.randperm(100, generator=generator(3, "ablation/0.5"))
    assert torch.equal(a, torch.randperm(100, generator=generator(3, "ablation/0.5")))
    assert not torch.equal(a, torch.randperm(100, generator=generator(3, "ablation/0.25")))
    assert not torch.equal(a, torch.randperm(100, generator=generator(4, "ablation/0.5")))
    m, data = net(), batches()  # (building nn.Linear draws from the global generator)
    state = torch.get_rng_state()
    pruning_probe(m, data, [0.5], 2, lambda p: generator(0, p))
    ablated_accuracy(m, data, 0.5, 2, generator(0, "a"))
    assert torch.equal(state, torch.get_rng_state())  # the probes never draw from it


def test_unit_mask_zeroes_exactly_the_fraction():
    g = generator(0, "t")
    for c, f in ((32, 0.25), (10, 0.5), (7, 0.1), (16, 0.0)):
        m = unit_mask(c, f, g)
        assert int((m == 0).sum()) == round(f * c) and int((m == 1).sum()) == c - round(f * c)


def test_ablation_equals_zeroing_the_units_outgoing_weights():
    m, data = net(), batches()
    assert ablated_accuracy(m, data, 0.0, 3, generator(0, "a")) == eval_accuracy(m, data)
    # one draw: the same masks applied by hand, as zeroed columns of the next layers
    g1, g2 = generator(0, "b"), generator(0, "b")
    probe = ablated_accuracy(m, data, 0.5, 1, g1)
    k1, k2 = unit_mask(32, 0.5, g2), unit_mask(16, 0.5, g2)
    cut = net()
    with torch.no_grad():
        cut[3].weight.mul_(k1)  # (16, 32): the columns of ablated layer-1 units
        cut[5].weight.mul_(k2)  # (10, 16)
    assert probe == eval_accuracy(cut, data)
    assert probe != eval_accuracy(m, data)  # it did remove something
    before = outputs(m, data)
    ablated_accuracy(m, data, 0.5, 2, generator(0, "c"))
    assert torch.equal(before, outputs(m, data))  # hooks removed, model unchanged


def test_ablating_every_unit_leaves_the_head_bias():
    m, data = net(), batches()
    const = int(m[5].bias.argmax())  # no unit left: every input gets the bias's argmax
    want = float((data.y == const).double().mean())
    assert ablated_accuracy(m, data, 0.999, 2, generator(0, "d")) == pytest.approx(want)


def test_magnitude_pruning_removes_the_smallest_weights():
    m, data = net(), batches()
    for s in (0.5, 0.8, 0.9):
        pruned = pruned_copy(m, lambda w, s=s: magnitude_indices(w, s))
        for i in (0, 3, 5):
            w0, w = m[i].weight, pruned[i].weight
            zero = w == 0
            assert int(zero.sum()) == round(s * w.numel())
            assert w0.abs()[zero].max() <= w0.abs()[~zero].min()  # smallest ones went
            assert torch.equal(w[~zero], w0[~zero])
        assert torch.equal(pruned[0].bias, m[0].bias)  # biases stay
    out = pruning_probe(m, data, [0.0, 0.9], 3, lambda p: generator(0, p))
    full = eval_accuracy(m, data)
    assert out["diag/prune_acc/magnitude/0"] == out["diag/prune_acc/random/0"] == full
    assert 0.0 <= out["diag/prune_acc/random/0.9"] <= 1.0
    assert out == pruning_probe(m, data, [0.0, 0.9], 3, lambda p: generator(0, p))  # repeatable


def test_activation_statistics_by_hand_and_scale_free_near_zero():
    a = torch.tensor([[0.0, 2.0], [0.0, 1e-4], [0.0, 4.0], [0.0, 3.0]])  # (N=4, C=2)
    st = activation_stats(a, 0.01)
    rms = (29.0 / 8) ** 0.5
    assert st["act_mean"] == pytest.approx(9.0001 / 8)
    assert st["act_rms"] == pytest.approx(((4 + 1e-8 + 16 + 9) / 8) ** 0.5)
    assert st["act_near_zero"] == pytest.approx(5 / 8)  # 4 zeros and 1e-4 <= 0.01 * rms
    assert rms > 0 and st["act_dead"] == 0.5  # unit 0 is never on
    # ReLU is positively homogeneous: layer 1 times c, layer 2's weights / c -> same function
    m, data = net(), batches()
    c = 3.0
    scaled = net()
    with torch.no_grad():
        scaled[0].weight.mul_(c)
        scaled[0].bias.mul_(c)
        scaled[3].weight.div_(c)
    assert torch.allclose(outputs(m, data), outputs(scaled, data), atol=1e-5)
    p0, p1 = activations_probe(m, data, 0.01), activations_probe(scaled, data, 0.01)
    assert p1["diag/act_mean/1"] == pytest.approx(c * p0["diag/act_mean/1"], rel=1e-5)
    assert p1["diag/act_near_zero/1"] == p0["diag/act_near_zero/1"]
    assert set(p0) == {f"diag/{k}/{i}" for k in ("act_mean", "act_rms", "act_near_zero",
                                                  "act_dead") for i in (1, 2)}  # fmt: skip


def test_ensemble_and_mc_dropout_average_probabilities():
    x, y = batches().x, batches().y
    a, b = net(0), net(1)
    pa, pb = (torch.softmax(m(x).double(), 1) for m in (a, b))
    assert torch.allclose(ensemble_probs([a, b], x), (pa + pb) / 2)
    nll, err = nll_error(pa, y)
    assert err == pytest.approx(1 - eval_accuracy(a, batches()))
    assert nll == pytest.approx(float(nn.functional.cross_entropy(a(x).double(), y)))
    d, vanilla, plain = net(0, drop=0.5), net(0), net(0)
    state = torch.get_rng_state()
    p1 = mc_dropout_probs(d, x, 4, generator(0, "mc"))
    assert torch.equal(state, torch.get_rng_state())
    assert torch.equal(p1, mc_dropout_probs(d, x, 4, generator(0, "mc")))  # same stream
    assert not torch.allclose(p1, torch.softmax(d(x).double(), 1))  # masks were drawn
    one = mc_dropout_probs(d, x, 1, generator(0, "one"))  # one pass = one mask by hand
    g = generator(0, "one")
    h = torch.relu(d[0](x))
    mask = torch.bernoulli(torch.full(h.shape, 0.5, dtype=torch.float64), generator=g)
    logits = d[5](torch.relu(d[3](h * (mask / 0.5).float())))
    assert torch.allclose(one, torch.softmax(logits.double(), 1), atol=1e-6)
    assert not d.training
    with pytest.raises(ValueError, match="no dropout layer"):
        mc_dropout_probs(plain, x, 2, generator(0, "x"))
    vanilla[2] = VanillaDropout(0.5)
    with pytest.raises(ValueError, match=r"bernoulli\) dropout only, not \['VanillaDropout'\]"):
        mc_dropout_probs(vanilla, x, 2, generator(0, "x"))


def test_probe_settings_are_checked_with_one_line_errors(tiny):
    cfg = tiny("diag.ablation.fractions=[0.1,0.5]", "diag.activations.enabled=true")
    suite = probe_suite(cfg.diag, 7)
    assert suite.seed == 7 and suite.ablation_fractions == (0.1, 0.5) and suite.activations
    assert probe_suite(tiny().diag, 0) is None  # all off by default
    bad = [
        ("diag.ablation.fractions=[0.1,1.5]", "diag.ablation.fractions[1]=1.5 is out of range"),
        ("diag.ablation.draws=0", "diag.ablation.draws=0 is not valid"),
        ("diag.pruning.sparsities=0.5", "sparsities=0.5 is not valid; it must be a list"),
        ("diag.activations.near_zero=-1", "diag.activations.near_zero=-1 is out of range"),
    ]  # fmt: skip
    for override, msg in bad:
        with pytest.raises(ConfigError, match=msg.replace("[", r"\[").replace("]", r"\]")):
            probe_suite(tiny(override).diag, 0)


@pytest.mark.parametrize(
    ("line", "msg"),
    [
        ("diag.ablation.fractions=[1.5]", "diag.ablation.fractions[0]=1.5 is out of range"),
        ("model.init_scale=0", "model.init_scale=0 is out of range; allowed: (0, inf)"),
    ],
)
def test_bad_probe_and_init_scale_input_exit_2_before_any_run(line, msg, capsys, experiment):
    from regbench.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["train", line, f"experiment_name={experiment}"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1
    assert runs_of(experiment) == []


def test_init_scale_multiplies_every_weight(tiny):
    from regbench.nn import build_model

    torch.manual_seed(0)
    base = build_model(tiny("model.norm=batch").model, (40,), 10)
    torch.manual_seed(0)
    scaled = build_model(tiny("model.norm=batch", "model.init_scale=4").model, (40,), 10)
    for (name, p), q in zip(base.named_parameters(), scaled.parameters(), strict=True):
        if name.endswith("weight") and p.ndim > 1:
            assert torch.equal(q, 4 * p)
        else:
            assert torch.equal(q, p)  # biases and BN parameters untouched


def test_probes_are_logged_by_single_and_batched_runs(tiny, experiment):
    from regbench.batched.runs import run_members
    from regbench.train import run

    probes = [
        "diag.ablation.fractions=[0.5]",
        "diag.ablation.draws=2",
        "diag.pruning.sparsities=[0.8]",
        "diag.pruning.random_draws=2",
        "diag.activations.enabled=true",
        "model.block=[linear,act]",
    ]
    keys = {
        "diag/ablate_acc/0.5", "diag/prune_acc/magnitude/0.8", "diag/prune_acc/random/0.8",
        "diag/act_mean/1", "diag/act_near_zero/2", "diag/act_dead/2",
    }  # fmt: skip
    single = run(tiny(*probes, experiment_name=experiment))
    cfgs = [tiny(*probes, f"seed={s}", experiment_name=experiment) for s in (0, 1)]
    batched = run_members(cfgs, [["seed=0"], ["seed=1"]])
    for metrics in (single, *batched):
        assert keys <= set(metrics)
        assert all(0.0 <= metrics[k] <= 1.0 for k in keys if "act_mean" not in k)
    # seed 0 trained alone and in a group: the same model up to float order (no dropout:
    # issue 20), the same probe draws, so the same accuracies up to a test sample or two
    for k in keys - {"diag/act_mean/1"}:
        assert abs(single[k] - batched[0][k]) <= 2 / 200, k
    assert single["diag/act_mean/1"] == pytest.approx(batched[0]["diag/act_mean/1"], rel=1e-4)

"""The run's random streams (regbench.streams; docs/ARCHITECTURE.md, "Randomness"): keys
by purpose, draws by counter, never torch's global generator; a run's draws do not move
with evaluation passes, diagnostics or the thread count."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from draws import recorded, same
from regbench.batched.runs import run_members
from regbench.streams import TRAIN, Clock, Stream, bind_model, clock_of


def test_keys_are_derived_by_purpose_and_name_never_by_order():
    a, b = Stream.of_run(0), Stream.of_run(1)
    assert a == Stream.of_run(0) and a != b
    assert a.child("data", "split") == a.child("data").child("split")
    names = [("init",), ("data", "split"), ("data", "order"), ("layer", "blocks.0.3")]
    keys = {a.child(*n).key for n in names} | {b.child(*n).key for n in names}
    assert len(keys) == 2 * len(names)  # no two purposes (or runs) share a stream
    assert a.child("ab", "c") != a.child("a", "bc")  # names are not concatenated
    assert a.seed(0, 5) != a.seed(5, 0) and a.seed(0, 5) == a.seed(0, 5)
    assert copy.deepcopy(a) is a and pickle.loads(pickle.dumps(a)) == a


def test_a_draw_depends_on_its_counter_only():
    s, other = Stream.of_run(3).child("layer", "x"), Stream.of_run(4)
    first = torch.rand(5, generator=s.generator("cpu", TRAIN, 7))
    torch.rand(100, generator=other.generator("cpu", TRAIN, 7))  # other draws in between
    torch.rand(3, generator=s.generator("cpu", TRAIN, 8))
    assert torch.equal(torch.rand(5, generator=s.generator("cpu", TRAIN, 7)), first)
    assert not torch.equal(torch.rand(5, generator=s.generator("cpu", TRAIN, 8)), first)
    assert s.random(1).random() == s.random(1).random() != s.random(2).random()


def test_every_stochastic_layer_gets_its_own_stream_and_the_runs_clock(tiny):
    from regbench.train import build

    cfg = tiny("model.dropout=0.3", "model.input_dropout=0.2", "reg=[mixup,augment1d]")
    _, _, module = build(cfg)
    drawn = [m for m in module.model.modules() if getattr(m, "stochastic", False)]
    assert len(drawn) == 3 and all(m.clock is module.clock for m in drawn)
    assert len({m.stream for m in drawn}) == 3
    assert all(t.clock is module.clock for t in module.reg.transforms)
    assert clock_of(copy.deepcopy(module.model)) is module.clock  # a copy reads the run's
    model = copy.deepcopy(module.model)
    bind_model(model, Stream.of_run(9), Clock())
    assert clock_of(model) is not module.clock


def test_runs_never_touch_torchs_global_generator(tiny, experiment):
    from regbench.train import run

    extra = ["model.dropout=0.3", "model.dropconnect=0.2", "reg=[mixup,augment1d]"]
    cfgs = [tiny(*extra, f"seed={s}", experiment_name=experiment) for s in (0, 1)]
    state = torch.get_rng_state()
    run(cfgs[0])
    run_members(cfgs, [[], []])
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("threads", [2])
def test_draws_do_not_move_with_evaluation_diagnostics_or_threads(tiny, experiment, threads):
    """Monte-Carlo validation every epoch or every other, diagnostics (train-mode passes)
    every epoch or only at the end, 1 or 2 threads: the same training draws, bitwise."""
    from regbench.train import run

    base = ["model.dropout=0.3", "reg=[mixup]", "model.test_mode=mc", "model.mc_samples=3"]
    base += ["trainer.max_epochs=2", "trainer.check_val_every_n_epoch=2"]
    with recorded() as plain:
        run(tiny(*base, experiment_name=experiment))
    with recorded() as busy:
        more = ["trainer.check_val_every_n_epoch=1", "diag.every_n_epochs=1"]
        run(tiny(*base, *more, experiment_name=experiment))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with recorded() as threaded:
            run(tiny(*base, experiment_name=experiment))
    finally:
        torch.set_num_threads(before)
    training = {k for k in plain if isinstance(k, tuple) and k[1][0] == TRAIN}
    assert len(training) > 2 * 10  # two epochs of masks and pairings
    for other in (busy, threaded):
        assert all(same(plain[k], other[k]) for k in training)

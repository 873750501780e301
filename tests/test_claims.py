"""The claims layer: each verdict rule on hand-computed intervals, the seeds-needed note,
exact checks, paired statistics, bad claims, and the claims table."""

from __future__ import annotations

import math

import pytest

from regbench.report.claims import (
    INCONCLUSIVE,
    REFUTED,
    SUPPORTED,
    Claim,
    claims_table,
    judge,
    paired,
    paired_by_seed,
    seeds_needed,
)
from regbench.report.stats import mean_ci, t_quantile


def claim(direction="above", threshold=0.0, **kw) -> Claim:
    return Claim("k", "a claim", "x per seed", direction, threshold, "derivation", **kw)


# [1, 2, 3]: mean 2, sd 1, 95% half-width t_{0.975,2}/sqrt(3) = 2.484 -> [-0.484, 4.484]
VALS = [1.0, 2.0, 3.0]
HALF = 4.302653 / math.sqrt(3)


@pytest.mark.parametrize(
    ("direction", "threshold", "delta", "status"),
    [
        ("above", 2 - HALF - 0.01, 0.0, SUPPORTED),  # whole interval above
        ("above", 2 + HALF + 0.01, 0.0, REFUTED),  # whole interval below
        ("above", 2.0, 0.0, INCONCLUSIVE),  # straddles
        ("below", 2 + HALF + 0.01, 0.0, SUPPORTED),
        ("below", 2 - HALF - 0.01, 0.0, REFUTED),
        ("below", 1.0, 0.0, INCONCLUSIVE),
        ("within", 2.0, HALF + 0.01, SUPPORTED),  # interval inside the band
        ("within", 10.0, 1.0, REFUTED),  # interval entirely outside the band
        ("within", 2.0, 1.0, INCONCLUSIVE),  # interval wider than the band
        ("outside", 10.0, 1.0, SUPPORTED),
        ("outside", 2.0, HALF + 0.01, REFUTED),
        ("outside", 2.0, 1.0, INCONCLUSIVE),
    ],
)
def test_verdict_follows_the_95_percent_t_interval(direction, threshold, delta, status):
    v = judge(claim(direction, threshold, delta=delta), VALS)
    assert v.status == status
    assert (v.summary.lo, v.summary.hi) == pytest.approx((2 - HALF, 2 + HALF), rel=1e-6)
    if status == INCONCLUSIVE:
        assert v.note.startswith("the interval straddles the threshold")
    else:
        assert v.note == ""


def test_a_mean_far_past_the_threshold_is_not_enough_when_the_interval_straddles():
    # the mean (5.77) is far above 2 but the interval reaches below it (issue 10's example)
    v = judge(claim("above", 2.0), [0.5, 5.0, 11.8])
    assert v.summary.mean > 2 and v.summary.lo < 2 and v.status == INCONCLUSIVE


def test_one_seed_never_supports_a_claim_about_a_random_quantity():
    v = judge(claim("above", 0.0), [100.0])
    assert v.status == INCONCLUSIVE and v.note == "one seed; needs 3"
    assert v.estimate() == "100.000 (one seed, no interval)"


def test_fewer_seeds_than_needed_is_inconclusive_and_says_where_the_interval_leans():
    v = judge(claim("above", 0.0, min_seeds=5), [1.0, 1.1, 1.2])
    assert v.status == INCONCLUSIVE
    assert v.note == "3 seeds, needs 5; the interval would say SUPPORTED"
    v = judge(claim("above", 1.1, min_seeds=5), [1.0, 1.1, 1.2])
    assert v.note == "3 seeds, needs 5"  # the mean on the threshold: no count would do
    v = judge(claim("above", 1.05, min_seeds=5), [1.0, 1.1, 1.2])  # margin 0.05, sd 0.1
    need = seeds_needed(v.claim, v.summary)
    assert need > 5
    assert v.note == f"3 seeds, needs 5; the observed spread would need about {need} seeds"


def test_an_inconclusive_verdict_says_how_many_seeds_the_spread_would_need():
    vals = [0.0, 1.0, 2.0, 3.0]  # mean 1.5, sd 1.291
    c = claim("above", 0.5)
    v = judge(c, vals)
    assert v.status == INCONCLUSIVE
    need = seeds_needed(c, v.summary)
    # the smallest n whose half-width t_{n-1} sd / sqrt(n) is below the margin 1.0
    sd = v.summary.sd
    assert t_quantile(0.95, need - 1) * sd / math.sqrt(need) < 1.0
    assert t_quantile(0.95, need - 2) * sd / math.sqrt(need - 1) >= 1.0
    assert v.note.endswith(f"the observed spread would need about {need} seeds")
    # a mean exactly on the threshold: no number of seeds decides it
    v = judge(claim("above", 1.5), vals)
    assert v.note == "the interval straddles the threshold; the mean sits on it"


def test_exact_checks_are_judged_on_their_tolerance_with_every_value():
    c = claim("within", 0.0, delta=1e-6, exact=True, min_seeds=1)
    assert judge(c, [1e-9, -5e-7]).status == SUPPORTED
    v = judge(c, [1e-9, 2e-6])  # one value outside the tolerance fails the check
    assert v.status == REFUTED and v.note == "deterministic check, judged on its tolerance"
    assert v.estimate() == "0.000 .. 0.000 (all values)"
    one = judge(claim("above", 0.0, exact=True, min_seeds=1), [1.0])  # one value is enough
    assert one.status == SUPPORTED and one.estimate() == "1.000"


def test_paired_differences_keep_seeds_aligned():
    assert paired([3.0, 5.0], [1.0, 1.5]) == [2.0, 3.5]
    with pytest.raises(ValueError, match="same seeds: 2 vs 1 values"):
        paired([1.0, 2.0], [1.0])
    assert paired_by_seed({0: 3.0, 1: 5.0, 2: 9.0}, {2: 1.0, 0: 1.0}) == [2.0, 8.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"direction": "more"}, "direction='more'; one of"),
        ({"direction": "within", "delta": 0.0}, "direction='within' needs delta > 0"),
        ({"min_seeds": 1}, "min_seeds=1; a claim about a random quantity needs at least 2"),
        ({"rationale": "  "}, "the threshold needs a rationale"),
    ],
)
def test_bad_claims_fail_with_their_key_and_value(kwargs, message):
    args = {
        "key": "bad",
        "text": "t",
        "statistic": "s",
        "direction": "above",
        "threshold": 0.0,
        "rationale": "r",
    }
    with pytest.raises(ValueError, match=r"Claim 'bad': ") as e:
        Claim(**{**args, **kwargs})
    assert message in str(e.value)


def test_nan_values_are_an_error_not_averaged_away():
    with pytest.raises(ValueError, match="NaN"):
        judge(claim(), [1.0, float("nan"), 2.0])


def test_claims_table_counts_verdicts_and_shows_every_column():
    vs = [
        judge(claim("above", 0.0, scale=100, digits=1, unit=" pts"), [0.1, 0.12, 0.11]),
        judge(claim("above", 0.0), [1.0]),
    ]
    text = claims_table(vs)
    assert text.splitlines()[0] == "## Claims: 1 SUPPORTED, 0 REFUTED, 1 INCONCLUSIVE"
    row = next(line for line in text.splitlines() if "**SUPPORTED**" in line)
    s = mean_ci([0.1, 0.12, 0.11])
    assert f"11.0 pts [{100 * s.lo:.1f} pts, {100 * s.hi:.1f} pts]" in row
    assert "> 0.0 pts" in row and "3 (needs 3)" in row and "derivation" in row
    assert "**INCONCLUSIVE**: one seed; needs 3" in text


def test_readings_follow_the_verdicts_in_declared_order():
    from regbench.report.claims import Claim, judge, readings

    up = Claim("up", "t", "s", "above", 0.0, "derivation", min_seeds=2)
    down = Claim("down", "t", "s", "below", 0.0, "derivation", min_seeds=2)
    vs = [judge(up, [1.0, 1.1, 0.9]), judge(down, [1.0, 1.1, 0.9])]  # SUPPORTED, REFUTED
    texts = {("down", "REFUTED"): "b", ("up", "SUPPORTED"): "a", ("up", "REFUTED"): "x"}
    assert readings(vs, texts) == ["b", "a"]

"""The claims layer: the distributions against published values, each statistic kind on
known per-seed values (SUPPORTED, REFUTED, INCONCLUSIVE), Holm's family-wise verdicts
(including where they change a verdict), seeds for 80% power, effect sizes, bad claims,
the claims section of a report and its JSON."""

from __future__ import annotations

import json
import math

import pytest
from scipy import stats as sps

from regbench.report.claims import (
    INCONCLUSIVE,
    POSITION_MIN_SEEDS,
    REFUTED,
    SUPPORTED,
    Claim,
    judge,
    paired,
    paired_by_seed,
    readings,
)
from regbench.report.family import counts, holm, related
from regbench.report.markdown import claims_section
from regbench.report.power import binomial_power, seeds_binomial, seeds_t, t_power
from regbench.report.stats import clopper_pearson, mean_ci, t_quantile


def claim(direction="above", threshold=0.0, key="k", **kw) -> Claim:
    return Claim(key, "a claim", "x per seed", direction, threshold, "derivation", **kw)


# --- distributions: published values -------------------------------------------------


@pytest.mark.parametrize(
    # two-sided 95% and 99% points of Student's t (any t table, 3-4 decimals)
    ("level", "df", "table_value"),
    [(0.95, 2, 4.303), (0.95, 9, 2.262), (0.95, 1, 12.706), (0.95, 29, 2.045), (0.99, 5, 4.032)],
)
def test_t_quantiles_match_the_tables(level, df, table_value):
    assert t_quantile(level, df) == pytest.approx(table_value, abs=6e-4)


def test_clopper_pearson_matches_its_closed_forms_and_a_published_interval():
    # n of n: lower = (alpha/2)^(1/n); 0 of n: upper = 1 - (alpha/2)^(1/n) (Clopper &
    # Pearson 1934); 0 of 20 -> [0, 0.1684], as in Newcombe 1998 (Stat. Med. 17:857)
    assert clopper_pearson(3, 3) == pytest.approx((0.025 ** (1 / 3), 1.0))
    assert clopper_pearson(6, 6)[0] == pytest.approx(0.5407, abs=1e-4)  # first above 1/2
    assert clopper_pearson(0, 20) == pytest.approx((0.0, 0.1684), abs=1e-4)
    # the interval is the beta quantiles: Beta(k, n-k+1) and Beta(k+1, n-k)
    lo, hi = clopper_pearson(4, 9)
    assert lo == pytest.approx(sps.beta.ppf(0.025, 4, 6)) and hi == pytest.approx(
        sps.beta.ppf(0.975, 5, 5)
    )


def test_power_and_seeds_match_the_standard_sample_sizes():
    # a medium effect (Cohen's d = 0.5), one-sample t-test, 80% power: n = 34 two-sided
    # at 5% (power 0.808), n = 27 one-sided at 5% (0.812); e.g. G*Power 3 (Faul et al. 2007)
    assert t_power(0.5, 34, 0.025) == pytest.approx(0.808, abs=1e-3)
    assert t_power(0.5, 27, 0.05) == pytest.approx(0.812, abs=1e-3)
    assert seeds_t([0.5], 0.025) == 34 and seeds_t([0.5], 0.05) == 27
    assert t_power(0.5, 33, 0.025) < 0.8  # 34 is the smallest
    # TOST: both margins; the Bonferroni bound asks for more than either one alone
    n = seeds_t([0.5, 0.8], 0.025)
    assert n >= 34 and t_power(0.5, n, 0.025) + t_power(0.8, n, 0.025) - 1 >= 0.8
    assert seeds_t([1e-4], 0.025) == 1001  # more than MAX_SEEDS
    # binomial: every seed in the window -> the sign test's minimum; 80% at pi = 0.8
    assert seeds_binomial(1.0, 0.025, POSITION_MIN_SEEDS) == POSITION_MIN_SEEDS == 6
    n = seeds_binomial(0.8, 0.025, 6)
    assert binomial_power(0.8, n, 0.025) >= 0.8
    assert all(binomial_power(0.8, m, 0.025) < 0.8 for m in range(6, n))


# --- mean and paired: one-sided t-tests, the 95% t-interval ----------------------------

# [1, 2, 3]: mean 2, sd 1, 95% half-width t_{0.975,2}/sqrt(3) = 2.484 -> [-0.484, 4.484]
VALS = [1.0, 2.0, 3.0]
HALF = 4.302653 / math.sqrt(3)


@pytest.mark.parametrize("kind", ["mean", "paired"])
@pytest.mark.parametrize(
    ("direction", "threshold", "delta", "status"),
    [
        ("above", 2 - HALF - 0.01, 0.0, SUPPORTED),  # whole interval above
        ("above", 2 + HALF + 0.01, 0.0, REFUTED),  # whole interval below
        ("above", 2.0, 0.0, INCONCLUSIVE),  # straddles
        ("below", 2 + HALF + 0.01, 0.0, SUPPORTED),
        ("below", 2 - HALF - 0.01, 0.0, REFUTED),
        ("below", 1.0, 0.0, INCONCLUSIVE),
        ("within", 2.0, HALF + 0.01, SUPPORTED),  # TOST: interval inside the band
        ("within", 10.0, 1.0, REFUTED),  # interval entirely outside the band
        ("within", 2.0, 1.0, INCONCLUSIVE),  # interval wider than the band
        ("outside", 10.0, 1.0, SUPPORTED),
        ("outside", 2.0, HALF + 0.01, REFUTED),
        ("outside", 2.0, 1.0, INCONCLUSIVE),
    ],
)
def test_mean_verdicts_are_one_sided_tests_equal_to_the_interval_rule(
    kind, direction, threshold, delta, status
):
    v = judge(claim(direction, threshold, delta=delta, kind=kind), VALS)
    assert v.status == status
    assert (v.summary.lo, v.summary.hi) == pytest.approx((2 - HALF, 2 + HALF), rel=1e-6)
    # the p-value of the verdict's side is below 2.5% exactly when the verdict is decided
    assert (v.p_value < 0.025) == (status != INCONCLUSIVE)
    if status == INCONCLUSIVE:
        assert v.note.startswith("the interval straddles the threshold; ")
    else:
        assert v.note == ""


def test_one_sided_p_value_is_the_t_tail():
    v = judge(claim("above", 0.5), VALS)  # T = 1.5 / (1 / sqrt(3)) = 2.598, df 2
    assert v.p_support == pytest.approx(sps.t.sf(1.5 * math.sqrt(3), 2))
    assert v.p_support + v.p_refute == pytest.approx(1.0)


def test_a_mean_far_past_the_threshold_is_not_enough_when_the_interval_straddles():
    # the mean (5.77) is far above 2 but the interval reaches below it
    v = judge(claim("above", 2.0), [0.5, 5.0, 11.8])
    assert v.summary.mean > 2 and v.summary.lo < 2 and v.status == INCONCLUSIVE


def test_one_seed_never_supports_a_claim_about_a_random_quantity():
    v = judge(claim("above", 0.0), [100.0])
    assert v.status == INCONCLUSIVE and v.note == "one seed; needs 3"
    assert v.estimate() == "100.000 (one seed, no interval)" and v.p_value is None


def test_too_few_seeds_is_inconclusive_and_says_the_lean_and_the_seeds_for_80_percent_power():
    v = judge(claim("above", 0.0, min_seeds=5), [1.0, 1.1, 1.2])
    assert v.status == INCONCLUSIVE and v.p_support < 0.025
    assert v.note == (
        "3 seeds, needs 5; the interval would say SUPPORTED; 80% power at the observed "
        "effect: about 5 seeds"
    )
    v = judge(claim("above", 2.0, min_seeds=5), [1.0, 2.0, 3.0])
    assert v.note.endswith(
        "the observed effect sits on the threshold: no number of seeds decides it"
    )


def test_an_inconclusive_verdict_gives_the_seeds_for_80_percent_power_at_the_observed_effect():
    vals = [0.0, 1.0, 2.0, 3.0]  # mean 1.5, sd 1.291: d = 1.0 / 1.291 from the threshold 0.5
    v = judge(claim("above", 0.5), vals)
    assert v.status == INCONCLUSIVE
    d = 1.0 / v.summary.sd
    n = v.seeds_80
    assert t_power(d, n, 0.025) >= 0.8 > t_power(d, n - 1, 0.025)
    assert v.note.endswith(f"80% power at the observed effect: about {n} seeds")
    # the old 50%-power number (the n where the mean just clears the line) is smaller
    half = next(m for m in range(2, 100) if t_quantile(0.95, m - 1) * v.summary.sd / m**0.5 < 1)
    assert half < n
    assert v.effect == pytest.approx((1.5 - 0.5) / v.summary.sd)
    assert v.effect_text() == f"d = +{v.effect:.2f}"


def test_equal_values_are_judged_by_the_sign_test_never_by_a_zero_width_interval():
    v = judge(claim("above", 0.0), [0.05, 0.05, 0.05])
    assert v.status == INCONCLUSIVE and v.position.k == 3  # 3 of 3: p = 1/8
    assert v.note.startswith("every value equal: judged by the sign test")
    assert judge(claim("above", 0.0), [0.05] * 6).status == SUPPORTED  # 6 of 6: p = 1/64
    on = judge(claim("above", 0.0), [0.0] * 6)
    assert on.status == INCONCLUSIVE and on.note == (
        "every value equal and on the threshold: no number of seeds decides it"
    )


def test_paired_differences_keep_seeds_aligned():
    assert paired([3.0, 5.0], [1.0, 1.5]) == [2.0, 3.5]
    with pytest.raises(ValueError, match="same seeds: 2 vs 1 values"):
        paired([1.0, 2.0], [1.0])
    assert paired_by_seed({0: 3.0, 1: 5.0, 2: 9.0}, {2: 1.0, 0: 1.0}) == [2.0, 8.0]


# --- position: seeds in the window, the sign test ----------------------------------------


def pos(**kw) -> Claim:  # a window [3, 5] on a grid reading
    return claim("within", 4.0, delta=1.0, kind="position", **kw)


@pytest.mark.parametrize(
    ("values", "k", "status"),
    [
        ([3.0, 4.0, 4.0, 5.0, 3.5, 4.0], 6, SUPPORTED),  # 6 of 6: p = 1/64 < 0.025
        ([6.0, 7.0, 2.0, 1.0, 9.0, 8.0], 0, REFUTED),  # 0 of 6
        ([4.0, 4.0, 4.0, 4.0, 7.0, 8.0], 4, INCONCLUSIVE),  # 4 of 6: p = 0.34
        ([4.0] * 7 + [9.0], 7, INCONCLUSIVE),  # 7 of 8: p = 9/256 = 0.035
        ([4.0] * 9 + [9.0], 9, SUPPORTED),  # 9 of 10: p = 11/1024 = 0.011
    ],
)
def test_position_verdicts_count_seeds_in_the_window(values, k, status):
    v = judge(pos(), values)
    n = len(values)
    assert (v.position.k, v.position.n, v.status) == (k, n, status)
    assert v.p_support == pytest.approx(sps.binom.sf(k - 1, n, 0.5))
    lo, hi = clopper_pearson(k, n)
    assert (v.position.lo, v.position.hi) == (lo, hi)
    # SUPPORTED exactly when the Clopper-Pearson interval lies above 1/2
    assert (lo > 0.5) == (status == SUPPORTED) and (hi < 0.5) == (status == REFUTED)
    assert v.effect == pytest.approx(2 * math.asin(math.sqrt(k / n)) - math.pi / 2)
    assert f"{k} of {n} seeds in the window" in v.estimate()
    assert v.to_dict()["estimate"]["lo"] is None  # no t-interval of grid readings


def test_a_position_claim_needs_six_seeds_whatever_its_min_seeds():
    v = judge(pos(), [3.585, 3.585, 3.585])  # all three seeds at one grid point
    assert v.status == INCONCLUSIVE and v.summary.half < 1e-12  # the old zero-width "CI"
    assert v.note == (
        "3 seeds, needs 6 (a position claim: even 3 of 3 in the window has p = 0.125); "
        "80% power at the observed effect: about 6 seeds"
    )
    assert pos().seeds_required == 6 and pos(min_seeds=8).seeds_required == 8
    assert judge(pos(min_seeds=8), [4.0] * 7).note.startswith("7 seeds, needs 8; the count")


def test_exact_checks_are_judged_on_their_tolerance_with_every_value():
    c = claim("within", 0.0, delta=1e-6, exact=True, min_seeds=1)
    assert judge(c, [1e-9, -5e-7]).status == SUPPORTED
    v = judge(c, [1e-9, 2e-6])  # one value outside the tolerance fails the check
    assert v.status == REFUTED and v.note == "deterministic check, judged on its tolerance"
    assert v.estimate() == "0.000 .. 0.000 (all values)" and v.p_value is None
    one = judge(claim("above", 0.0, exact=True, min_seeds=1), [1.0])  # one value is enough
    assert one.status == SUPPORTED and one.estimate() == "1.000"


# --- family-wise: Holm's step-down -------------------------------------------------------


def test_holm_keeps_verdicts_whose_p_clears_its_step_and_stops_at_the_first_that_does_not():
    # p-values about 5e-6, 0.016 and 0.024: per claim all SUPPORTED at 2.5%
    strong = judge(claim(key="a"), [1.0, 1.1, 0.9, 1.05, 0.95])
    mid = judge(claim(key="b"), [0.25, 1.0, 1.0, 0.55])
    weak = judge(claim(key="c"), [0.2, 1.0, 0.9, 0.4])
    assert [v.status for v in (strong, mid, weak)] == [SUPPORTED] * 3
    assert strong.p_value < 0.025 / 3 and 0.025 / 2 <= mid.p_value < weak.p_value < 0.025
    fam = holm([weak, strong, mid])
    assert [v.family_status for v in fam] == [INCONCLUSIVE, SUPPORTED, INCONCLUSIVE]
    assert fam[1].family_note.startswith("Holm step 1 of 3: p = ")
    assert fam[2].family_note.startswith("Holm step 2 of 3: p = ") and "≥ 0.025/2" in (
        fam[2].family_note
    )
    assert fam[0].family_note.startswith("Holm stopped at step 2 of 3")
    assert "80% power at the observed effect, each test at 0.025/3: about" in fam[0].family_note
    assert [v.holm_level for v in fam] == pytest.approx([0.025, 0.025 / 3, 0.0125])
    # per-claim verdicts are kept beside the family-wise ones
    assert [v.status for v in fam] == [SUPPORTED] * 3
    # without the weaker claims in the family, the same claim stands
    assert holm([mid])[0].family_status == SUPPORTED


def test_holm_leaves_checks_and_exact_claims_out_and_keeps_too_few_seeds_in_m():
    ok = judge(claim(key="a"), [1.0, 1.1, 0.9, 1.05, 0.95])
    few = judge(claim(key="few", min_seeds=5), [1.0, 1.1, 1.2])  # p < 0.025, 3 of 5 seeds
    check = judge(claim(key="chk", role="check", role_reason="by construction"), [0.2, 1.0, 1.2])
    exact = judge(claim(key="ex", exact=True), [1.0])
    folk = judge(claim("below", key="folk", role="folk"), [1.0, 1.1, 0.9, 1.05])  # REFUTED
    fam = {v.claim.key: v for v in holm([ok, few, check, exact, folk])}
    assert {v.family_size for v in fam.values() if v.holm_level} == {3}  # ok, few, folk
    assert fam["few"].family_status == INCONCLUSIVE
    assert fam["few"].family_note.startswith("too few seeds per claim")
    assert fam["folk"].family_status == REFUTED and fam["a"].family_status == SUPPORTED
    assert fam["chk"].family_status == fam["chk"].status and fam["chk"].holm_level is None
    assert fam["chk"].family_note == "not in the family (a check: never evidence)"
    assert fam["ex"].family_note == "not in the family (exact: no error rate)"
    n = counts(list(fam.values()))
    # an exact finding counts with its own verdict (every exact claim shipped is a check)
    assert n["finding"] == {SUPPORTED: 2, REFUTED: 0, INCONCLUSIVE: 1}
    assert n["folk"] == {SUPPORTED: 0, REFUTED: 1, INCONCLUSIVE: 0}
    assert n["check"] == {SUPPORTED: 0, REFUTED: 0, INCONCLUSIVE: 1}  # per claim
    assert json.loads(json.dumps(fam["folk"].to_dict()))["family_status"] == REFUTED


def test_holm_turns_a_position_claim_inconclusive_when_its_exact_p_cannot_clear_the_step():
    a = judge(pos(key="a"), [4.0] * 6)  # p = 1/64 = 0.0156
    b = judge(pos(key="b"), [4.0] * 6)
    fam = holm([a, b])
    assert [v.status for v in fam] == [SUPPORTED] * 2
    assert [v.family_status for v in fam] == [INCONCLUSIVE] * 2  # 0.0156 >= 0.025/2
    assert fam[0].seeds_80_family == 7  # 1/128 < 0.0125


def test_related_claims_share_a_curve():
    vs = [
        judge(claim(key="min", curves=("noisy",)), VALS),
        judge(claim(key="rise", curves="noisy"), VALS),
        judge(claim(key="clean", curves=("noisy", "clean")), VALS),
        judge(claim(key="alone"), VALS),
    ]
    assert related(vs) == {
        "min": ("rise", "clean"),
        "rise": ("min", "clean"),
        "clean": ("min", "rise"),
        "alone": (),
    }
    assert holm(vs)[0].to_dict()["related"] == ["rise", "clean"]


# --- bad claims, the report's section, the JSON -----------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"direction": "more"}, "direction='more'; one of"),
        ({"direction": "within", "delta": 0.0}, "direction='within' needs delta > 0"),
        ({"min_seeds": 1}, "min_seeds=1; a claim about a random quantity needs at least 2"),
        ({"rationale": "  "}, "the threshold needs a rationale"),
        ({"kind": "median"}, "kind='median'; one of"),
        ({"role": "hunch"}, "role='hunch'; one of"),
        ({"role": "check"}, "role='check' needs a role_reason"),
    ],
)
def test_bad_claims_fail_with_their_key_and_value(kwargs, message):
    args = {"key": "bad", "text": "t", "statistic": "s", "direction": "above"}
    with pytest.raises(ValueError, match=r"Claim 'bad': ") as e:
        Claim(**{**args, "threshold": 0.0, "rationale": "r", **kwargs})
    assert message in str(e.value)


def test_nan_values_are_an_error_not_averaged_away():
    with pytest.raises(ValueError, match="NaN"):
        judge(claim(), [1.0, float("nan"), 2.0])


def test_claims_section_counts_roles_family_wise_and_lists_checks_apart():
    vs = [
        judge(claim(key="a", scale=100, digits=1, unit=" pts"), [0.1, 0.12, 0.11]),
        judge(claim(key="b", curves="c"), [1.0]),
        judge(claim(key="f", role="folk", curves="c"), [0.25, 1.0, 1.0, 0.55]),  # p = 0.016
        judge(claim(key="chk", role="check", role_reason="by construction"), [1.0, 1.1, 1.2]),
    ]
    text = claims_section(vs)
    lines = text.splitlines()
    assert lines[0] == "## Claims"
    assert lines[2].startswith(
        "Findings: 1 SUPPORTED, 0 REFUTED, 1 INCONCLUSIVE. Folk claims: 0 SUPPORTED, 0 "
        "REFUTED, 1 INCONCLUSIVE. Family-wise verdicts (Holm's step-down over the 3 random"
    )
    assert lines[2].endswith("never counted as evidence): 1 SUPPORTED, 0 REFUTED, 0 INCONCLUSIVE.")
    row = next(line for line in lines if line.startswith("| `a`: "))
    s = mean_ci([0.1, 0.12, 0.11])
    assert f"11.0 pts [{100 * s.lo:.1f} pts, {100 * s.hi:.1f} pts]" in row
    assert "> 0.0 pts" in row and "3 (needs 3)" in row and "derivation" in row
    assert f"d = +{s.mean / s.sd:.2f}" in row and "t-test of the mean" in row
    assert "| **SUPPORTED** (p = " in row and "Holm step 1 of 3" in row
    folk = next(line for line in lines if line.startswith("| `f`: "))
    assert "(related: `b`: same curve)" in folk and "| folk |" in folk
    assert "**INCONCLUSIVE**: one seed; needs 3" in text
    checks = text.split("### Checks")[1]
    assert "| `chk`: a claim | by construction |" in checks and "`chk`" not in text.split("###")[0]


def test_readings_follow_the_verdicts_in_declared_order():
    up = Claim("up", "t", "s", "above", 0.0, "derivation", min_seeds=2)
    down = Claim("down", "t", "s", "below", 0.0, "derivation", min_seeds=2)
    vs = [judge(up, [1.0, 1.1, 0.9]), judge(down, [1.0, 1.1, 0.9])]  # SUPPORTED, REFUTED
    texts = {("down", "REFUTED"): "b", ("up", "SUPPORTED"): "a", ("up", "REFUTED"): "x"}
    assert readings(vs, texts) == ["b", "a"]


def test_table_cells_escape_pipes():
    from regbench.report.markdown import table

    # "fraction |w| < 0.01 RMS(w)" would otherwise split into extra columns
    assert table(["statistic"], [["|w| < 0.01"]]).splitlines()[2] == r"| \|w\| < 0.01 |"


def test_a_threshold_that_rounds_to_zero_is_printed_as_it_is():
    """two_inputs' exact-zero check (|w_B| below 1e-300) read "claim < 0.000"."""
    exact = Claim("z", "exactly 0", "|w|", "below", 1e-300, "by construction", exact=True)
    assert exact.threshold_text() == "< 1e-300"
    assert Claim("m", "m", "s", "above", 0.5, "r").threshold_text() == "> 0.500"
    assert Claim("n", "n", "s", "below", 0.0, "r").threshold_text() == "< 0.000"


def test_an_interval_narrower_than_the_digits_shows_its_own():
    """epoch_double_descent's single-minimum claims read '0.0000 [0.0000, 0.0000]' at cpu
    scale (float32 bumps of 1e-8..1e-7 on every draw): a zero-width interval on paper."""
    c = Claim("one_min", "a single minimum", "bump height", "below", 0.01, "r", digits=4)
    x = [3e-8, 6e-8, 6e-8, 9e-8, 9e-8, 6e-8]
    v = judge(c, x)
    assert v.status == SUPPORTED
    m = sum(x) / 6
    half = sps.t.ppf(0.975, 5) * math.sqrt(sum((a - m) ** 2 for a in x) / 5 / 6)
    assert v.estimate() == f"{m:.2g} [{m - half:.2g}, {m + half:.2g}]"
    assert "0.0000" not in v.estimate()
    assert judge(c, [0.0, 0.002, 0.001]).estimate().startswith("0.0010 [")

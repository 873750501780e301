"""Claims declared before a run, and their verdicts from the per-seed values.

A :class:`Claim` says what is computed per seed (or per seed as a paired difference of two
arms that share seeds and data), which side of a threshold the claim puts it on, where
the threshold comes from, how many seeds it needs, its ``role`` (what its verdict counts
as) and its ``kind`` (which test turns values into a verdict). :func:`judge` applies the
test; docs/REPRODUCTIONS.md "How a claim is judged" states the rules for a reader:

- ``mean`` / ``paired``: one-sided t-tests of the mean (of the values, or of per-seed
  differences) against the threshold, each at 2.5%. SUPPORTED when the test for the
  claim's side rejects, REFUTED when the test for the other side does, else
  INCONCLUSIVE. Equivalently: the whole 95% t-interval lies on one side. ``within`` is an
  equivalence claim judged by two one-sided tests (TOST, Schuirmann 1987, J.
  Pharmacokinet. Biopharm. 15:657): both band edges must be rejected.
- ``position``: a discrete reading (an argmin or argmax on a grid, a grid index, which
  arm wins). A t-interval of such values is meaningless (three seeds at the same grid
  point make a zero-width interval), so each seed only says whether it lands on the
  claim's side (in the window), and the count is judged by the exact sign test against
  1/2 (Dixon & Mood 1946, JASA 41:557): the claim is that a seed lands in the window more
  often than not. SUPPORTED when P(X >= k | Bin(n, 1/2)) < 2.5%, i.e. the 95%
  Clopper-Pearson interval on the fraction lies above 1/2; REFUTED when it lies below.
  Even n of n has p = 2^-n, so a position claim needs at least 6 seeds
  (:data:`POSITION_MIN_SEEDS`).
- ``exact``: a deterministic check (closed form, identity) has no interval: SUPPORTED
  when every value is on the claim's side of its tolerance, else REFUTED.

A mean or paired claim whose values are all equal is judged by the sign test too: a
zero-width t-interval would read as certainty. Too few seeds (fewer than the claim's
``min_seeds``, or than its kind needs) is always INCONCLUSIVE. Every INCONCLUSIVE verdict
on a random quantity says how many seeds a rerun would need for 80% power at the observed
effect (:mod:`regbench.report.power`). Family-wise verdicts (Holm over a reproduction's
claims): :mod:`regbench.report.family`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from regbench.report.power import MAX_SEEDS, seeds_binomial, seeds_t
from regbench.report.stats import (
    Summary,
    binomial_pvalues,
    clopper_pearson,
    mean_ci,
    t_pvalues,
)

SUPPORTED, REFUTED, INCONCLUSIVE = "SUPPORTED", "REFUTED", "INCONCLUSIVE"
STATUSES = (SUPPORTED, REFUTED, INCONCLUSIVE)
DIRECTIONS = ("above", "below", "within", "outside")
#: what a claim's verdict counts as (docs/REPRODUCTIONS.md, "How a claim is judged"):
#: ``finding`` (what the cited paper reports), ``folk`` (a popular belief put to the
#: test), ``check`` (identity, closed form, by-construction sanity; never evidence)
ROLES = ("finding", "folk", "check")
#: how per-seed values become a verdict: ``mean`` (t-test of the mean), ``paired``
#: (t-test of per-seed differences of two arms), ``position`` (a discrete reading,
#: judged by how many seeds land in the window), ``exact`` (a deterministic check)
KINDS = ("mean", "paired", "position", "exact")
#: each one-sided test's level: the two sides of a 95% two-sided interval
ALPHA = 0.025
#: the fewest seeds at which n of n in the window can pass the sign test at ALPHA
POSITION_MIN_SEEDS = next(n for n in range(1, 64) if 0.5**n < ALPHA)  # 6
RULES = {
    "mean": "t-test of the mean, 2.5% a side (95% t-interval)",
    "paired": "t-test of the per-seed differences, 2.5% a side (95% t-interval)",
    "position": "sign test on the seeds in the window: exact binomial vs 1/2, 2.5% a side "
    f"(95% Clopper-Pearson); needs {POSITION_MIN_SEEDS} seeds",
    "exact": "deterministic: every value within the tolerance",
}


@dataclass(frozen=True)
class Claim:
    """One pre-registered claim.

    ``direction``: ``above`` (value > threshold), ``below`` (value < threshold),
    ``within`` (value in [threshold - delta, threshold + delta], an equivalence claim)
    or ``outside`` (value outside that band). ``rationale`` cites the paper, theorem,
    derivation or docs section the threshold comes from, never a value observed here.
    ``role_reason`` says why a ``check`` is one (required) or whose belief a ``folk``
    claim is. ``curves`` names what the claim is read off (a curve, an arm's runs):
    claims of a reproduction sharing a name are *related*, not independent evidence.
    ``scale`` and ``digits`` only format numbers (``scale=100`` prints a fraction as
    percentage points).
    """

    key: str
    text: str
    statistic: str
    direction: str
    threshold: float
    rationale: str
    min_seeds: int = 3
    delta: float = 0.0
    exact: bool = False
    scale: float = 1.0
    digits: int = 3
    unit: str = ""
    role: str = "finding"
    kind: str = ""  # "" = from ``exact`` ("exact") else "mean"; see KINDS
    role_reason: str = ""
    curves: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.kind:
            object.__setattr__(self, "kind", "exact" if self.exact else "mean")
        if self.kind not in KINDS:
            raise ValueError(f"Claim {self.key!r}: kind={self.kind!r}; one of {KINDS}")
        if (self.kind == "exact") != self.exact:
            object.__setattr__(self, "exact", self.kind == "exact")
        if isinstance(self.curves, str):
            object.__setattr__(self, "curves", (self.curves,))
        if self.role not in ROLES:
            raise ValueError(f"Claim {self.key!r}: role={self.role!r}; one of {ROLES}")
        if self.role == "check" and not self.role_reason.strip():
            raise ValueError(f"Claim {self.key!r}: role='check' needs a role_reason")
        if self.direction not in DIRECTIONS:
            raise ValueError(
                f"Claim {self.key!r}: direction={self.direction!r}; one of {DIRECTIONS}"
            )
        if self.direction in ("within", "outside") and not self.delta > 0:
            raise ValueError(f"Claim {self.key!r}: direction={self.direction!r} needs delta > 0")
        if not self.exact and self.min_seeds < 2:
            raise ValueError(
                f"Claim {self.key!r}: min_seeds={self.min_seeds}; a claim about a random "
                "quantity needs at least 2 seeds (one seed has no interval)"
            )
        if not self.rationale.strip():
            raise ValueError(f"Claim {self.key!r}: the threshold needs a rationale")

    @property
    def seeds_required(self) -> int:
        """The seeds a verdict needs: ``min_seeds``, and for a position claim at least the
        sign test's minimum."""
        if self.kind == "position":
            return max(self.min_seeds, POSITION_MIN_SEEDS)
        return self.min_seeds

    def num(self, x: float) -> str:
        return f"{x * self.scale:.{self.digits}f}{self.unit}"

    def threshold_text(self) -> str:
        t = self.num(self.threshold)
        if self.threshold and abs(self.threshold * self.scale) < 0.5 * 10.0**-self.digits:
            # a threshold that rounds to 0 at the claim's digits (two_inputs' exact zero,
            # 1e-300) read as "< 0.000", which no value meets
            t = f"{self.threshold * self.scale:.0e}{self.unit}"
        d = f"{self.delta * self.scale:.{self.digits}f}{self.unit}"
        return {
            "above": f"> {t}",
            "below": f"< {t}",
            "within": f"within {t} ± {d}",
            "outside": f"outside {t} ± {d}",
        }[self.direction]

    def rule(self) -> str:
        """The test, in words (the report's "rule" column)."""
        tost = self.direction in ("within", "outside") and self.kind in ("mean", "paired")
        return RULES[self.kind] + ("; equivalence: TOST" if tost else "")

    def on_side(self, x: float) -> bool:
        """Whether one value lies on the claim's side (a position claim's "in the window")."""
        t, d = self.threshold, self.delta
        return {
            "above": x > t,
            "below": x < t,
            "within": t - d <= x <= t + d,
            "outside": x < t - d or x > t + d,
        }[self.direction]


@dataclass(frozen=True)
class Position:
    """A position claim's count: ``k`` of ``n`` seeds in the window, and the 95%
    Clopper-Pearson interval on the fraction."""

    k: int
    n: int
    lo: float
    hi: float

    @property
    def fraction(self) -> float:
        return self.k / self.n


@dataclass(frozen=True)
class Verdict:
    """A claim's verdict on its values. ``p_support`` / ``p_refute``: one-sided p-values
    for the claim's side and the other side (None for exact checks and one seed).
    ``seeds_80``: seeds for 80% power at the observed effect (None: no number would do,
    or not a random claim; ``MAX_SEEDS + 1``: more than MAX_SEEDS). ``effect``:
    (mean - threshold) / sd for a mean or paired claim (the band's centre for within /
    outside), Cohen's h = 2 asin(sqrt(fraction)) - 2 asin(sqrt(1/2)) for a position claim.
    The ``family_*`` fields, ``seeds_80_family`` and ``related`` are set by
    :func:`regbench.report.family.holm`."""

    claim: Claim
    values: tuple[float, ...]
    summary: Summary | None
    status: str
    note: str = ""
    p_support: float | None = None
    p_refute: float | None = None
    seeds_80: int | None = None
    effect: float | None = None
    position: Position | None = None
    family_status: str = ""
    family_note: str = ""
    holm_level: float | None = None
    family_size: int = 0
    seeds_80_family: int | None = None
    related: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def enough_seeds(self) -> bool:
        return self.claim.exact or self.n >= self.claim.seeds_required

    @property
    def p_value(self) -> float | None:
        """The p-value of the verdict's side: the claim's side when SUPPORTED, the other
        when REFUTED, the smaller of the two when INCONCLUSIVE."""
        if self.p_support is None or self.p_refute is None:
            return None
        if self.status == REFUTED:
            return self.p_refute
        if self.status == SUPPORTED:
            return self.p_support
        return min(self.p_support, self.p_refute)

    def estimate(self) -> str:
        c, s = self.claim, self.summary
        if s is None:
            return "no values"
        if c.exact:
            lo, hi = min(self.values), max(self.values)
            return c.num(lo) if lo == hi else f"{c.num(lo)} .. {c.num(hi)} (all values)"
        if self.position is not None:
            p = self.position
            vals = sorted(self.values)
            shown = (
                ", ".join(c.num(v) for v in vals)
                if len(vals) <= 8
                else f"median {c.num(vals[len(vals) // 2])}, {c.num(vals[0])} .. {c.num(vals[-1])}"
            )
            return (
                f"{p.k} of {p.n} seeds in the window, fraction [{p.lo:.2f}, {p.hi:.2f}] "
                f"(Clopper-Pearson 95%); values {shown}"
            )
        if s.n < 2:
            return f"{c.num(s.mean)} (one seed, no interval)"
        if c.num(s.lo) == c.num(s.hi):
            # an interval narrower than the claim's digits printed as zero width
            # ('0.0000 [0.0000, 0.0000]' for float32 bumps of 1e-8..1e-7): show its digits
            return f"{s.mean * c.scale:.2g}{c.unit} [{s.lo * c.scale:.2g}, {s.hi * c.scale:.2g}]"
        return f"{c.num(s.mean)} [{c.num(s.lo)}, {c.num(s.hi)}]"

    def effect_text(self) -> str:
        if self.effect is None:
            return ""
        label = "h" if self.claim.kind == "position" else "d"
        return f"{label} = {self.effect:+.2f}"

    def to_dict(self) -> dict:
        """Everything about this verdict as plain JSON values (``claims.json``, read by
        ``regbench site``)."""
        c, s, p = self.claim, self.summary, self.position
        est = None
        if s is not None:
            est = {"mean": s.mean, "lo": s.lo, "hi": s.hi, "sd": s.sd, "n": s.n}
            if p is not None:  # no t-interval of discrete readings
                est.update(lo=None, hi=None)
        return {
            "key": c.key,
            "text": c.text,
            "statistic": c.statistic,
            "kind": c.kind,
            "rule": c.rule(),
            "role": c.role,
            "role_reason": c.role_reason,
            "direction": c.direction,
            "threshold": c.threshold,
            "delta": c.delta,
            "threshold_text": c.threshold_text(),
            "rationale": c.rationale,
            "min_seeds": c.min_seeds,
            "seeds_required": c.seeds_required,
            "scale": c.scale,
            "digits": c.digits,
            "unit": c.unit,
            "values": list(self.values),
            "estimate": est,
            "estimate_text": self.estimate(),
            "effect": self.effect,
            "effect_kind": (None if self.effect is None else "h" if p is not None else "d"),
            "position": None
            if p is None
            else {
                "in_window": p.k,
                "n": p.n,
                "fraction": p.fraction,
                "lo": p.lo,
                "hi": p.hi,
                "p0": 0.5,
            },
            "p_support": self.p_support,
            "p_refute": self.p_refute,
            "p_value": self.p_value,
            "status": self.status,
            "note": self.note,
            "seeds_80": self.seeds_80,
            "in_family": bool(self.family_size) and in_family(self),
            "family_size": self.family_size,
            "holm_level": self.holm_level,
            "family_status": self.family_status or self.status,
            "family_note": self.family_note,
            "seeds_80_family": self.seeds_80_family,
            "curves": list(c.curves),
            "related": list(self.related),
        }


def in_family(v: Verdict) -> bool:
    """Whether a verdict enters Holm's family: a random claim (not ``exact``) that counts as
    evidence (a finding or a folk claim, not a check)."""
    return v.claim.role != "check" and not v.claim.exact


def _pvalues(c: Claim, s: Summary) -> tuple[float, float]:
    """(p for the claim's side, p for the other side) of the t-tests against its bounds."""
    if c.direction in ("above", "below"):
        up, down = t_pvalues(s, c.threshold)
        return (up, down) if c.direction == "above" else (down, up)
    above_lo, below_lo = t_pvalues(s, c.threshold - c.delta)
    above_hi, below_hi = t_pvalues(s, c.threshold + c.delta)
    inside = max(above_lo, below_hi)  # TOST: both edges rejected
    # the two outer one-sided tests cannot both reject (their events are disjoint)
    outside = min(below_lo, above_hi)
    return (inside, outside) if c.direction == "within" else (outside, inside)


def _status(p_support: float, p_refute: float, alpha: float = ALPHA) -> str:
    return SUPPORTED if p_support < alpha else REFUTED if p_refute < alpha else INCONCLUSIVE


def _margins(c: Claim, mean: float) -> tuple[float, ...] | None:
    """The distances (> 0) from the mean to the boundaries that a test towards the side
    the mean leans to must clear: one for a one-sided test, both band edges for TOST;
    None when the mean sits on a deciding boundary (no number of seeds decides it)."""
    t, d = c.threshold, c.delta
    if c.direction in ("above", "below"):
        margins: tuple[float, ...] = (abs(mean - t),)
    elif abs(mean - t) < d:  # inside the band: both edges (TOST)
        margins = (mean - (t - d), (t + d) - mean)
    else:  # outside (or on an edge): the nearer edge
        margins = (abs(mean - t) - d,)
    return margins if all(x > 0 for x in margins) else None


def rerun_seeds(v: Verdict, alpha: float = ALPHA) -> int | None:
    """Seeds for 80% power at the observed effect, each one-sided test at ``alpha`` (None:
    an exact check, too few values, or an effect on the boundary)."""
    c, s = v.claim, v.summary
    if c.exact or s is None:
        return None
    if v.position is not None:
        frac = v.position.fraction
        if frac == 0.5:
            return None
        return seeds_binomial(max(frac, 1 - frac), alpha, c.seeds_required)
    if s.n < 2:
        return None
    margins = _margins(c, s.mean)
    if margins is None:
        return None
    if s.sd == 0:  # the t-test's limit: any n it accepts
        return max(2, c.seeds_required)
    return seeds_t([x / s.sd for x in margins], alpha, c.seeds_required)


def seeds_text(n: int | None, level: str = "") -> str:
    """``80% power at the observed effect: about N seeds`` for an INCONCLUSIVE line;
    ``level`` names a stricter test level (e.g. Holm's ``0.025/5``)."""
    at = f", each test at {level}" if level else ""
    if n is None:
        return "the observed effect sits on the threshold: no number of seeds decides it"
    if n > MAX_SEEDS:
        return f"80% power at the observed effect{at}: more than {MAX_SEEDS} seeds"
    return f"80% power at the observed effect{at}: about {n} seeds"


def judge(claim: Claim, values: Sequence[float]) -> Verdict:
    """The verdict of ``claim`` on its per-seed ``values`` (NaN is an error)."""
    vals = tuple(float(v) for v in values)
    if not vals:
        return Verdict(claim, vals, None, INCONCLUSIVE, "no values")
    s = mean_ci(vals)
    if claim.exact:  # no uncertainty to wait out: one value off the claim's side fails it
        ok = all(claim.on_side(v) for v in vals)
        note = "deterministic check, judged on its tolerance"
        return Verdict(claim, vals, s, SUPPORTED if ok else REFUTED, note)
    if claim.kind == "position":
        return _judge_position(claim, vals, s)
    return _judge_mean(claim, vals, s)


def _judge_mean(claim: Claim, vals: tuple[float, ...], s: Summary) -> Verdict:
    if s.n < 2:
        return Verdict(claim, vals, s, INCONCLUSIVE, f"one seed; needs {claim.min_seeds}")
    if len(set(vals)) == 1:  # ties: a zero-width t-interval would read as certainty
        if _margins(claim, vals[0]) is None:
            note = "every value equal and on the threshold: no number of seeds decides it"
            return Verdict(claim, vals, s, INCONCLUSIVE, note)
        v = _judge_position(claim, vals, s)
        tied = "every value equal: judged by the sign test, not a zero-width t-interval"
        return replace(v, note="; ".join(filter(None, [tied, v.note])))
    p_sup, p_ref = _pvalues(claim, s)
    effect = (s.mean - claim.threshold) / s.sd
    v = Verdict(claim, vals, s, INCONCLUSIVE, p_support=p_sup, p_refute=p_ref, effect=effect)
    need = rerun_seeds(v)
    v = replace(v, seeds_80=need)
    status = _status(p_sup, p_ref)
    if s.n < claim.min_seeds:
        lean = f"; the interval would say {status}" if status != INCONCLUSIVE else ""
        note = f"{s.n} seeds, needs {claim.min_seeds}{lean}; {seeds_text(need)}"
        return replace(v, note=note)
    if status != INCONCLUSIVE:
        return replace(v, status=status)
    return replace(v, note=f"the interval straddles the threshold; {seeds_text(need)}")


def _judge_position(claim: Claim, vals: tuple[float, ...], s: Summary) -> Verdict:
    n = len(vals)
    k = sum(claim.on_side(x) for x in vals)
    pos = Position(k, n, *clopper_pearson(k, n))
    p_sup, p_ref = binomial_pvalues(k, n)
    h = 2 * math.asin(math.sqrt(k / n)) - 2 * math.asin(math.sqrt(0.5))  # Cohen's h vs 1/2
    v = Verdict(
        claim, vals, s, INCONCLUSIVE, p_support=p_sup, p_refute=p_ref, effect=h, position=pos
    )
    need = rerun_seeds(v)
    v = replace(v, seeds_80=need)
    status = _status(p_sup, p_ref)
    req = claim.seeds_required
    if n < req:
        why = (
            f" (a position claim: even {n} of {n} in the window has p = {0.5**n:.3f})"
            if req > claim.min_seeds
            else ""
        )
        lean = f"; the count would say {status}" if status != INCONCLUSIVE else ""
        have = "one seed" if n == 1 else f"{n} seeds"
        return replace(v, note=f"{have}, needs {req}{why}{lean}; {seeds_text(need)}")
    if status != INCONCLUSIVE:
        return replace(v, status=status)
    return replace(v, note=f"{k} of {n} in the window is undecided; {seeds_text(need)}")


def paired(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """Per-seed differences ``a - b`` of two arms run on the same seeds (same order)."""
    if len(a) != len(b):
        raise ValueError(f"paired arms need the same seeds: {len(a)} vs {len(b)} values")
    return [float(x) - float(y) for x, y in zip(a, b, strict=True)]


def paired_by_seed(a: dict[int, float], b: dict[int, float]) -> list[float]:
    """Per-seed differences over the seeds both arms have, in seed order."""
    common = sorted(set(a) & set(b))
    return [a[s] - b[s] for s in common]


def readings(verdicts: Sequence[Verdict], texts: dict[tuple[str, str], str]) -> list[str]:
    """The plain sentences a report adds for given outcomes: ``texts`` maps
    (claim key, status) to a sentence, e.g. why a folk claim came out REFUTED."""
    status = {v.claim.key: v.status for v in verdicts}
    return [t for (key, st), t in texts.items() if status.get(key) == st]

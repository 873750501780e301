"""Claims declared before a run, and their verdicts from intervals over seeds.

A :class:`Claim` says what is computed per seed (or per seed as a paired difference of two
arms that share seeds and data), which side of a threshold the claim puts it on, where
the threshold comes from, and how many seeds it needs. :func:`judge` turns the per-seed
values into a :class:`Verdict`:

- SUPPORTED: the whole 95% t-interval of the mean lies on the claim's side;
- REFUTED: the whole interval lies on the other side;
- INCONCLUSIVE: the interval straddles the threshold, or there are fewer seeds than the
  claim needs (and one seed never supports a claim about a random quantity).

A deterministic check (a closed form, an identity; ``exact=True``) has no interval: it is
judged on its tolerance: SUPPORTED when every value is on the claim's side, else REFUTED.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from regbench.report.stats import Summary, mean_ci, t_quantile

SUPPORTED, REFUTED, INCONCLUSIVE = "SUPPORTED", "REFUTED", "INCONCLUSIVE"
DIRECTIONS = ("above", "below", "within", "outside")
#: what a claim's verdict counts as (docs/REPRODUCTIONS.md, "How a claim is judged"):
#: ``finding`` (what the cited paper reports), ``folk`` (a popular belief put to the
#: test), ``check`` (identity, closed form, by-construction sanity; never evidence)
ROLES = ("finding", "folk", "check")
#: how per-seed values become a verdict: ``mean`` (t-interval of the mean), ``paired``
#: (t-interval of per-seed differences of two arms), ``position`` (a discrete reading,
#: judged by how many seeds land in the window), ``exact`` (a deterministic check)
KINDS = ("mean", "paired", "position", "exact")
MAX_SEEDS_SHOWN = 1000


@dataclass(frozen=True)
class Claim:
    """One pre-registered claim.

    ``direction``: ``above`` (mean > threshold), ``below`` (mean < threshold), ``within``
    (mean in [threshold - delta, threshold + delta], an equivalence claim) or ``outside``
    (mean outside that band). ``rationale`` cites the paper, theorem or derivation the
    threshold comes from, never a value observed here. ``scale`` and ``digits`` only
    format numbers (e.g. ``scale=100`` prints a fraction as percentage points).
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

    def __post_init__(self) -> None:
        if not self.kind:
            object.__setattr__(self, "kind", "exact" if self.exact else "mean")
        if self.kind not in KINDS:
            raise ValueError(f"Claim {self.key!r}: kind={self.kind!r}; one of {KINDS}")
        if (self.kind == "exact") != self.exact:
            object.__setattr__(self, "exact", self.kind == "exact")
        if self.role not in ROLES:
            raise ValueError(f"Claim {self.key!r}: role={self.role!r}; one of {ROLES}")
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

    def num(self, x: float) -> str:
        return f"{x * self.scale:.{self.digits}f}{self.unit}"

    def threshold_text(self) -> str:
        t = self.num(self.threshold)
        d = f"{self.delta * self.scale:.{self.digits}f}{self.unit}"
        return {
            "above": f"> {t}",
            "below": f"< {t}",
            "within": f"within {t} ± {d}",
            "outside": f"outside {t} ± {d}",
        }[self.direction]


@dataclass(frozen=True)
class Verdict:
    claim: Claim
    values: tuple[float, ...]
    summary: Summary | None
    status: str
    note: str = ""

    @property
    def n(self) -> int:
        return len(self.values)

    def estimate(self) -> str:
        c, s = self.claim, self.summary
        if s is None:
            return "no values"
        if c.exact:
            lo, hi = min(self.values), max(self.values)
            return c.num(lo) if lo == hi else f"{c.num(lo)} .. {c.num(hi)} (all values)"
        if s.n < 2:
            return f"{c.num(s.mean)} (one seed, no interval)"
        return f"{c.num(s.mean)} [{c.num(s.lo)}, {c.num(s.hi)}]"

    def to_dict(self) -> dict:
        """Everything about this verdict as plain JSON values (``claims.json``, read by
        ``regbench site``)."""
        c, s = self.claim, self.summary
        est = None
        if s is not None:
            est = {"mean": s.mean, "lo": s.lo, "hi": s.hi, "sd": s.sd, "n": s.n}
        return {
            "key": c.key,
            "text": c.text,
            "statistic": c.statistic,
            "kind": c.kind,
            "role": c.role,
            "direction": c.direction,
            "threshold": c.threshold,
            "delta": c.delta,
            "threshold_text": c.threshold_text(),
            "rationale": c.rationale,
            "min_seeds": c.min_seeds,
            "scale": c.scale,
            "digits": c.digits,
            "unit": c.unit,
            "values": list(self.values),
            "estimate": est,
            "estimate_text": self.estimate(),
            "status": self.status,
            "note": self.note,
        }

    def row(self) -> list[str]:
        c = self.claim
        seeds = f"{self.n} (needs {c.min_seeds})" if not c.exact else f"{self.n} (exact)"
        status = f"**{self.status}**" + (f": {self.note}" if self.note else "")
        return [
            c.text,
            c.statistic,
            self.estimate(),
            c.threshold_text(),
            c.rationale,
            seeds,
            status,
        ]


def _side(c: Claim, lo: float, hi: float) -> str:
    """Where the interval [lo, hi] lies: SUPPORTED, REFUTED or INCONCLUSIVE."""
    t, d = c.threshold, c.delta
    if c.direction == "above":
        return SUPPORTED if lo > t else REFUTED if hi < t else INCONCLUSIVE
    if c.direction == "below":
        return SUPPORTED if hi < t else REFUTED if lo > t else INCONCLUSIVE
    inside = lo >= t - d and hi <= t + d
    outside = hi < t - d or lo > t + d
    if c.direction == "within":
        return SUPPORTED if inside else REFUTED if outside else INCONCLUSIVE
    return SUPPORTED if outside else REFUTED if inside else INCONCLUSIVE


def _margin(c: Claim, mean: float) -> float:
    """How far the mean is from the nearest boundary that decides the verdict."""
    if c.direction in ("above", "below"):
        return abs(mean - c.threshold)
    return abs(abs(mean - c.threshold) - c.delta)


def seeds_needed(c: Claim, s: Summary) -> int | None:
    """The fewest seeds whose 95% half-width, at the observed spread, no longer reaches
    the deciding boundary (``None`` when no number would do: a mean on the boundary)."""
    margin = _margin(c, s.mean)
    if margin == 0 or math.isnan(s.sd):
        return None
    if s.sd == 0:
        return max(2, c.min_seeds)
    for n in range(2, MAX_SEEDS_SHOWN + 1):
        if t_quantile(0.95, n - 1) * s.sd / math.sqrt(n) < margin:
            return max(n, c.min_seeds)
    return MAX_SEEDS_SHOWN + 1


def judge(claim: Claim, values: Sequence[float]) -> Verdict:
    """The verdict of ``claim`` on its per-seed ``values`` (NaN is an error)."""
    vals = tuple(float(v) for v in values)
    if not vals:
        return Verdict(claim, vals, None, INCONCLUSIVE, "no values")
    s = mean_ci(vals)
    if claim.exact:  # no uncertainty to wait out: one value off the claim's side fails it
        status = SUPPORTED if _side(claim, min(vals), max(vals)) == SUPPORTED else REFUTED
        return Verdict(claim, vals, s, status, "deterministic check, judged on its tolerance")
    if s.n < 2:
        return Verdict(claim, vals, s, INCONCLUSIVE, f"one seed; needs {claim.min_seeds}")
    status = _side(claim, s.lo, s.hi)
    need = seeds_needed(claim, s)
    if s.n < claim.min_seeds:
        lean = f"; the interval would say {status}" if status != INCONCLUSIVE else ""
        if status == INCONCLUSIVE and need is not None and need <= MAX_SEEDS_SHOWN:
            lean = f"; the observed spread would need about {need} seeds"
        return Verdict(claim, vals, s, INCONCLUSIVE, f"{s.n} seeds, needs {claim.min_seeds}{lean}")
    if status != INCONCLUSIVE:
        return Verdict(claim, vals, s, status)
    if need is None:
        note = "the interval straddles the threshold; the mean sits on it"
    elif need > MAX_SEEDS_SHOWN:
        note = f"the interval straddles the threshold; more than {MAX_SEEDS_SHOWN} seeds needed"
    else:
        note = (
            "the interval straddles the threshold; the observed spread would need about "
            f"{need} seeds"
        )
    return Verdict(claim, vals, s, INCONCLUSIVE, note)


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


HEADERS = ["claim", "statistic", "estimate [95% CI]", "threshold", "rationale", "seeds", "verdict"]


def claims_table(verdicts: Sequence[Verdict]) -> str:
    """The claims table of a report, with a count line above it."""
    from regbench.report.markdown import table

    counts = {k: sum(v.status == k for v in verdicts) for k in (SUPPORTED, REFUTED, INCONCLUSIVE)}
    head = "## Claims: " + ", ".join(f"{n} {k}" for k, n in counts.items())
    return "\n\n".join([head, table(HEADERS, [v.row() for v in verdicts])])

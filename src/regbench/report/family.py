"""Family-wise verdicts: Holm's step-down over a reproduction's random evidence claims.

A reproduction judges several random claims at once; at 2.5% a side each, the chance
that one of six true nulls yields a verdict is about 1 - 0.95^6 = 26%. The family is a
reproduction's findings and folk claims that are not exact checks (checks are never
evidence; exact checks have no error rate). Holm (1979, Scand. J. Statist. 6:65):

1. order the m members by p-value, p_(1) <= ... <= p_(m), where a claim's p-value is
   that of its per-claim verdict's side (``Verdict.p_value``); a claim without enough
   seeds enters with p = 1 (it is never decided, but it stays in m: the family was
   declared before the run);
2. for i = 1, 2, ...: the i-th claim keeps its per-claim verdict while p_(i) < 0.025 /
   (m - i + 1); at the first i where this fails, it and every claim after it become
   INCONCLUSIVE family-wise.

Three outcomes: each claim tests two one-sided hypotheses (its side, the other side) and
at most one can reject, so its p-value is the two-sided p / 2 and the step levels
0.025 / (m - i + 1) are Holm's at a family-wise 5% two-sided level. Holm with directional
decisions also bounds the chance of any verdict on the wrong side (Shaffer 1980, Ann.
Statist. 8:1342). Holm needs no independence, so related claims (read off the same
curve) are adjusted like any others; their ``related`` field says they are not
independent evidence. Family-wise can only turn a verdict INCONCLUSIVE, never flip it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from regbench.report.claims import (
    ALPHA,
    INCONCLUSIVE,
    REFUTED,
    ROLES,
    STATUSES,
    SUPPORTED,
    Verdict,
    in_family,
    rerun_seeds,
    seeds_text,
)


def related(verdicts: Sequence[Verdict]) -> dict[str, tuple[str, ...]]:
    """Per claim key, the other claims' keys that share one of its ``curves``."""
    out = {}
    for v in verdicts:
        mine = set(v.claim.curves)
        out[v.claim.key] = tuple(
            w.claim.key for w in verdicts if w is not v and mine & set(w.claim.curves)
        )
    return out


def holm(verdicts: Sequence[Verdict], alpha: float = ALPHA) -> list[Verdict]:
    """The verdicts with their family-wise status, note, Holm level and related claims
    set (order kept). Non-members keep their per-claim status."""
    rel = related(verdicts)
    members = [i for i, v in enumerate(verdicts) if in_family(v)]
    m = len(members)

    def p_eff(i: int) -> float:
        v = verdicts[i]
        p = v.p_value
        return 1.0 if p is None or not v.enough_seeds else p

    order = sorted(members, key=lambda i: (p_eff(i), i))
    out = [replace(v, related=rel[v.claim.key]) for v in verdicts]
    stopped: tuple[int, float, float] | None = None  # (step, p, level) where Holm stopped
    for step, i in enumerate(order):
        v, p = out[i], p_eff(i)
        level = alpha / (m - step)
        bonf = rerun_seeds(v, alpha / m)
        base = dict(holm_level=level, family_size=m, seeds_80_family=bonf)
        decided = v.status in (SUPPORTED, REFUTED) and v.enough_seeds
        if stopped is None and decided and p < level:
            note = f"Holm step {step + 1} of {m}: p = {p:.2g} < {alpha:g}/{m - step} = {level:.2g}"
            out[i] = replace(v, family_status=v.status, family_note=note, **base)
            continue
        if stopped is None:
            stopped = (step + 1, p, level)
        plan = seeds_text(bonf, f"{alpha:g}/{m}") if v.n >= 2 else ""
        if not v.values:
            note = "no values"
        elif not v.enough_seeds:
            note = "too few seeds per claim"
        elif v.status == INCONCLUSIVE:
            note = "INCONCLUSIVE per claim"
        elif stopped[0] == step + 1:
            note = f"Holm step {step + 1} of {m}: p = {p:.2g} ≥ {alpha:g}/{m - step} = {level:.2g}"
        else:
            note = f"Holm stopped at step {stopped[0]} of {m} (p = {stopped[1]:.2g})"
        out[i] = replace(
            v,
            family_status=INCONCLUSIVE,
            family_note="; ".join(filter(None, [note, plan])),
            **base,
        )
    for i, v in enumerate(out):
        if i not in members:
            why = "a check: never evidence" if v.claim.role == "check" else "exact: no error rate"
            out[i] = replace(v, family_status=v.status, family_note=f"not in the family ({why})")
    return out


def counts(verdicts: Sequence[Verdict]) -> dict[str, dict[str, int]]:
    """Per role, how many claims ended SUPPORTED / REFUTED / INCONCLUSIVE: family-wise for
    findings and folk claims (run :func:`holm` first), per claim for checks."""
    out = {r: dict.fromkeys(STATUSES, 0) for r in ROLES}
    for v in verdicts:
        st = v.status if v.claim.role == "check" else (v.family_status or v.status)
        out[v.claim.role][st] += 1
    return out

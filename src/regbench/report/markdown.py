"""Markdown tables of a report and their cells (mean ± CI, published numbers), and its
claims section: the evidence table (findings and folk claims, each with its per-claim and
family-wise verdict) and the checks table."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from regbench.report.claims import STATUSES, Verdict
from regbench.report.family import counts, holm
from regbench.report.stats import mean_ci


def _cell(c: object) -> str:
    # a bare "|" (|w|, ||beta||) would end the cell early
    return str(c).replace("|", "\\|")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; cells are written with ``str``, pipes escaped."""
    head = "| " + " | ".join(headers) + " |"
    rule = "|" + "|".join("---" for _ in headers) + "|"
    body = ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join([head, rule, *body])


def ci_cell(
    values: Iterable[float] | Mapping[object, float], digits: int = 3, scale: float = 1.0
) -> str:
    """A table cell: the mean ± 95% t-interval of ``values`` (a mapping: of its values,
    e.g. seed -> value), times ``scale``, as :meth:`Summary.fmt` writes it; "" for none."""
    vals = list(values.values() if isinstance(values, Mapping) else values)
    return mean_ci(vals).fmt(digits, scale) if vals else ""


def num_cell(x: float | None, digits: int = 2) -> str:
    """A table cell: ``x`` with ``digits`` decimals (a published number), "" for None."""
    return "" if x is None else f"{x:.{digits}f}"


EVIDENCE = [
    "claim",
    "role",
    "statistic",
    "rule",
    "estimate [95% CI]",
    "effect",
    "threshold",
    "rationale",
    "seeds",
    "verdict",
    "family-wise (Holm)",
]
CHECKS = [
    "check",
    "why a check",
    "statistic",
    "estimate",
    "threshold",
    "rationale",
    "seeds",
    "verdict",
]


def _claim_cell(v: Verdict) -> str:
    rel = f" (related: {', '.join(f'`{k}`' for k in v.related)}: same curve)" if v.related else ""
    return f"`{v.claim.key}`: {v.claim.text}{rel}"


def _seeds(v: Verdict) -> str:
    if v.claim.exact:
        return f"{v.n} (exact)"
    return f"{v.n} (needs {v.claim.seeds_required})"


def _status(status: str, note: str, p: float | None = None) -> str:
    pv = f" (p = {p:.2g})" if p is not None and status != "INCONCLUSIVE" else ""
    return f"**{status}**{pv}" + (f": {note}" if note else "")


def evidence_row(v: Verdict) -> list[str]:
    c = v.claim
    role = c.role + (f" ({c.role_reason})" if c.role_reason else "")
    return [
        _claim_cell(v),
        role,
        c.statistic,
        c.rule(),
        v.estimate(),
        v.effect_text(),
        c.threshold_text(),
        c.rationale,
        _seeds(v),
        _status(v.status, v.note, v.p_value),
        _status(v.family_status, v.family_note),
    ]


def check_row(v: Verdict) -> list[str]:
    c = v.claim
    return [
        _claim_cell(v),
        c.role_reason,
        c.statistic,
        v.estimate(),
        c.threshold_text(),
        c.rationale,
        _seeds(v),
        _status(v.status, v.note, v.p_value),
    ]


def tally(n: dict[str, int]) -> str:
    return ", ".join(f"{n[s]} {s}" for s in STATUSES) if sum(n.values()) else "none"


def claims_section(verdicts: Sequence[Verdict]) -> str:
    """The report's claims section: a count line, the evidence table, the checks table."""
    vs = holm(verdicts)
    n = counts(vs)
    evidence = [v for v in vs if v.claim.role != "check"]
    checks = [v for v in vs if v.claim.role == "check"]
    m = max((v.family_size for v in vs), default=0)
    parts = [
        "## Claims",
        f"Findings: {tally(n['finding'])}. Folk claims: {tally(n['folk'])}. Family-wise "
        f"verdicts (Holm's step-down over the {m} random findings and folk claims, "
        'docs/REPRODUCTIONS.md "How a claim is judged"). Checks (identities, closed '
        f"forms, by-construction sanity; never counted as evidence): {tally(n['check'])}.",
    ]
    if evidence:
        parts.append(table(EVIDENCE, [evidence_row(v) for v in evidence]))
    if checks:
        parts += ["### Checks", table(CHECKS, [check_row(v) for v in checks])]
    return "\n\n".join(parts)

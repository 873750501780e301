"""Markdown tables and PASS/FAIL verdict lines of a report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; cells are written with ``str``."""
    head = "| " + " | ".join(headers) + " |"
    rule = "|" + "|".join("---" for _ in headers) + "|"
    body = ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join([head, rule, *body])


@dataclass(frozen=True)
class Verdict:
    claim: str  # what the paper says, in one line
    passed: bool
    measured: str  # the numbers the decision was made on

    def line(self) -> str:
        return f"- **{'PASS' if self.passed else 'FAIL'}** {self.claim}: {self.measured}"


def verdict_block(verdicts: Sequence[Verdict]) -> str:
    n_pass = sum(v.passed for v in verdicts)
    lines = [f"## Verdicts: {n_pass}/{len(verdicts)} PASS", ""]
    return "\n".join(lines + [v.line() for v in verdicts])

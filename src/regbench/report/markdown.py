"""Markdown tables of a report (claims tables: :mod:`regbench.report.claims`)."""

from __future__ import annotations

from collections.abc import Sequence


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; cells are written with ``str``, a ``|`` inside a cell
    (``|w - w*|``) escaped as ``\\|`` so it does not split the cell."""
    head = "| " + " | ".join(_cell(h) for h in headers) + " |"
    rule = "|" + "|".join("---" for _ in headers) + "|"
    body = ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join([head, rule, *body])


def _cell(value: object) -> str:
    return str(value).replace("\\|", "|").replace("|", "\\|")

"""The markdown that regbench's reports use, as HTML: headings, paragraphs, tables (with
``\\|`` inside cells), lists, block quotes, fenced code, images, links, bold, italics and
code spans. Everything else is escaped text. Written for reports this project writes
(:mod:`regbench.report.markdown`), not for arbitrary markdown.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

Resolve = Callable[[str], str | None]

_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
# an asterisk right after a word character (w*, a footnote star) opens nothing
_EM = re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])")
_HEADING = re.compile(r"(#{1,6})\s+(.*)")
_ITEM = re.compile(r"\s*(?:[-*+]|\d+[.)])\s+(.*)")
_RULE = re.compile(r"\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*")


def inline(text: str, resolve: Resolve | None = None) -> str:
    """One line of text as HTML: code spans first (their contents stay literal), then
    images (``resolve`` maps a source to the site's file, or None to leave it out),
    links (only absolute http(s) links become anchors), bold, italics."""
    parts = _CODE.split(text)
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(f"<code>{html.escape(part)}</code>")
        else:
            out.append(_inline_text(part, resolve))
    return "".join(out)


def _inline_text(text: str, resolve: Resolve | None) -> str:
    pieces, pos = [], 0
    for m in _IMAGE.finditer(text):
        pieces.append(_emphasis(html.escape(text[pos : m.start()], quote=False)))
        src = resolve(m.group(2)) if resolve else m.group(2)
        if src:
            alt = html.escape(m.group(1))
            pieces.append(f'<img src="{html.escape(src)}" alt="{alt}">')
        pos = m.end()
    pieces.append(_emphasis(html.escape(text[pos:], quote=False)))
    return "".join(pieces)


def _emphasis(escaped: str) -> str:
    def link(m: re.Match) -> str:
        label, url = m.group(1), html.unescape(m.group(2))
        if url.startswith(("http://", "https://")):
            return f'<a href="{html.escape(url)}">{label}</a>'
        return label

    escaped = _LINK.sub(link, escaped)
    escaped = _BOLD.sub(r"<strong>\1</strong>", escaped)
    return _EM.sub(r"<em>\1</em>", escaped)


def split_row(line: str) -> list[str]:
    """A table row's cells; ``\\|`` is a literal bar inside a cell."""
    line = line.strip()
    line = line.removeprefix("|")
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    cells = re.split(r"(?<!\\)\|", line)
    return [c.strip().replace("\\|", "|") for c in cells]


def blocks(text: str) -> list[tuple[str, list[str]]]:
    """The text as (kind, lines) blocks: heading, table, list, quote, code, paragraph."""
    lines = text.splitlines()
    out: list[tuple[str, list[str]]] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if line.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            out.append(("code", lines[i + 1 : j]))
            i = j + 1
            continue
        if _HEADING.fullmatch(line):
            out.append(("heading", [line]))
            i += 1
            continue
        kind = _kind(line)
        j = i + 1
        while j < len(lines) and _continues(lines[j], kind):
            j += 1
        out.append((kind, lines[i:j]))
        i = j
    return out


def _continues(line: str, kind: str) -> bool:
    """Whether ``line`` belongs to the block of ``kind`` above it (a list item's
    continuation lines are plain text)."""
    if not line.strip() or line.startswith("```") or _HEADING.fullmatch(line):
        return False
    k = _kind(line)
    return k == kind or (kind == "list" and k == "paragraph")


def _kind(line: str) -> str:
    if line.lstrip().startswith("|"):
        return "table"
    if line.lstrip().startswith(">"):
        return "quote"
    if _ITEM.fullmatch(line):
        return "list"
    return "paragraph"


def to_html(text: str, resolve: Resolve | None = None) -> str:
    """Markdown ``text`` as an HTML fragment."""
    return "\n".join(render_block(kind, lines, resolve) for kind, lines in blocks(text))


def render_block(kind: str, lines: list[str], resolve: Resolve | None = None) -> str:
    if kind == "code":
        return f"<pre><code>{html.escape(chr(10).join(lines))}</code></pre>"
    if kind == "heading":
        m = _HEADING.fullmatch(lines[0])
        level = min(len(m.group(1)) + 1, 6)  # the page's own title is the h1
        return f"<h{level}>{inline(m.group(2), resolve)}</h{level}>"
    if kind == "table":
        return _table(lines, resolve)
    if kind == "list":
        ordered = lines[0].lstrip()[0].isdigit()
        items = []
        for line in lines:
            m = _ITEM.fullmatch(line)
            if m:
                items.append(inline(m.group(1), resolve))
            elif items:  # a continuation line of the previous item
                items[-1] += " " + inline(line.strip(), resolve)
        tag = "ol" if ordered else "ul"
        return f"<{tag}>" + "".join(f"<li>{x}</li>" for x in items) + f"</{tag}>"
    if kind == "quote":
        body = " ".join(line.lstrip()[1:].strip() for line in lines)
        return f"<blockquote><p>{inline(body, resolve)}</p></blockquote>"
    body = " ".join(line.strip() for line in lines)
    if _IMAGE.fullmatch(body):
        return f"<figure>{inline(body, resolve)}</figure>"
    return f"<p>{inline(body, resolve)}</p>"


def _table(lines: list[str], resolve: Resolve | None) -> str:
    rows = [split_row(line) for line in lines]
    head: list[str] = []
    if len(rows) > 1 and _RULE.fullmatch(lines[1].strip()):
        head, rows = rows[0], rows[2:]
    out = ['<div class="scroll"><table class="md">']
    if head:
        out.append("<thead><tr>" + "".join(f"<th>{inline(c, resolve)}</th>" for c in head))
        out.append("</tr></thead>")
    out.append("<tbody>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{inline(c, resolve)}</td>" for c in row) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)

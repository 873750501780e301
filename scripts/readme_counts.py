"""Fill the README's reproductions table from the cpu-scale reports: per role the
SUPPORTED / REFUTED / INCONCLUSIVE counts of ``reports/<name>/claims.json`` (family-wise
for findings and folk claims, as the report counts them) and, with ``--times FILE``, the
wall time of each reproduction from a log of ``=== WALL <name> <seconds> s`` lines
(the first line of a name counts).

    python scripts/readme_counts.py reports README.md [--times queue.log]

A row whose reproduction has no claims.json keeps its placeholders; the script prints
which rows it filled and which it left.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROLES = ("finding", "folk", "check")
STATUSES = ("SUPPORTED", "REFUTED", "INCONCLUSIVE")


def counts(data: dict) -> dict[str, dict[str, int]]:
    given = data.get("counts")
    if given:
        return given
    out = {r: dict.fromkeys(STATUSES, 0) for r in ROLES}
    for c in data["claims"]:
        st = c["status"] if c["role"] == "check" else (c.get("family_status") or c["status"])
        out[c["role"]][st] += 1
    return out


def cell(n: dict[str, int]) -> str:
    total = sum(n.values())
    if not total:
        return "–"
    return f"{n['SUPPORTED']} / {n['REFUTED']} / {n['INCONCLUSIVE']} of {total}"


def walls(log: Path) -> dict[str, float]:
    out = {}
    for m in re.finditer(r"^=== WALL (\w+) ([\d.]+) s$", log.read_text(), re.M):
        out.setdefault(m[1], float(m[2]))  # the first: the default path
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("reports", type=Path)
    p.add_argument("readme", type=Path)
    p.add_argument("--times", type=Path, help="log with '=== WALL <name> <s> s' lines")
    args = p.parse_args()
    times = walls(args.times) if args.times else {}
    lines = args.readme.read_text().splitlines()
    filled, left = [], []
    for i, line in enumerate(lines):
        m = re.match(r"^\| `(\w+)` \|", line)
        if not m or "of" not in line:
            continue
        name = m[1]
        path = args.reports / name / "claims.json"
        cells = line.split(" | ")
        if not path.exists():
            left.append(name)
            continue
        c = counts(json.loads(path.read_text()))
        cells[3:6] = [cell(c[r]) for r in ROLES]
        if name in times:
            last = cells[-1].rstrip(" |")
            cells[-1] = f"{times[name]:.0f} s |" if last else cells[-1]
        lines[i] = " | ".join(cells)
        filled.append(name)
    args.readme.write_text("\n".join(lines) + "\n")
    print(f"filled {len(filled)}: {', '.join(filled)}")
    print(f"left {len(left)} (no claims.json): {', '.join(left)}")


if __name__ == "__main__":
    main()

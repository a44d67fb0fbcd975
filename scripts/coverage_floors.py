"""Fail when the last coverage run is under its floors, for lines and for branches separately.

coverage's own ``--fail-under`` scores lines and branches together, so a high line score can
hide untested branches; this checks each against its own floor.

Usage: python scripts/coverage_floors.py --lines PERCENT --branches PERCENT
Reads the combined data file (``.coverage``) that ``pytest --cov`` leaves behind.
Exit status: 0 at or above both floors, 1 under either, 2 without coverage data.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import coverage
from coverage.exceptions import NoDataError


def totals() -> dict[str, int]:
    cov = coverage.Coverage()
    cov.load()
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "coverage.json"
        cov.json_report(outfile=str(report))
        data = json.loads(report.read_text())["totals"]
    return {key: data[key] for key in ("covered_lines", "num_statements", "covered_branches", "num_branches")}


def percent(covered: int, total: int) -> float:
    return 100.0 * covered / total if total else 100.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=float, required=True, help="floor for lines covered, in percent")
    parser.add_argument("--branches", type=float, required=True, help="floor for branches taken, in percent")
    args = parser.parse_args(argv)
    try:
        found = totals()
    except NoDataError as exc:
        print(f"coverage floors: no data ({exc})", file=sys.stderr)
        return 2
    lines = percent(found["covered_lines"], found["num_statements"])
    branches = percent(found["covered_branches"], found["num_branches"])
    print(
        f"coverage: lines {lines:.2f}% ({found['covered_lines']}/{found['num_statements']}, "
        f"floor {args.lines:g}%), branches {branches:.2f}% "
        f"({found['covered_branches']}/{found['num_branches']}, floor {args.branches:g}%)"
    )
    short = [
        f"{name} {value:.2f}% < {floor:g}%"
        for name, value, floor in (("lines", lines, args.lines), ("branches", branches, args.branches))
        if value < floor
    ]
    if short:
        print("FAILED: coverage under its floor: " + "; ".join(short), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

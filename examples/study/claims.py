#!/usr/bin/env python3
"""The paper's claims across the measured grids: one row a grid, one column a claim.

Reads the verdicts `hybc sweep` wrote into each `measured/<grid>/results.md` ("The
paper's claims" and "The update rule" tables) and prints a markdown table of them, the
one at the top of this directory's README: `·` where the report says the grid does not
test the claim, `–` where the report has no line for it (the update-rule line is
judged on recall grids only, and reports written before it was added lack it). Grids that test none of the claims are left out. Run from anywhere: `python3 examples/study/claims.py`.
"""

import pathlib
import re
import sys

MEASURED = pathlib.Path(__file__).resolve().parent / "measured"

# The claims as the report words them, and the column each gets.
CLAIMS = [
    ("Recall rises with the share of attention.", "recall rises with attention"),
    ("In hybrids, GatedDeltaNet and HGRN-2 do best.", "GatedDeltaNet and HGRN-2 best"),
    ("In hybrids, RetNet gains least from attention.", "RetNet gains least"),
    ("Language-modelling loss barely moves with the ratio.", "LM loss barely moves"),
    ("In hybrids, the delta rule recalls more than additive updates.", "delta rule beats additive"),
]

# The report's verdicts, shortened for the table.
VERDICTS = {
    "supported": "**supported**",
    "not supported (contradicted)": "**contradicted**",
    "inconclusive": "inconclusive",
    "not tested by this grid": "·",
}


def short(verdict: str) -> str:
    if verdict.startswith("no verdict"):
        return "no verdict (cells at chance)"
    if verdict not in VERDICTS:
        sys.exit(f"claims.py: a verdict this script does not know: {verdict!r}")
    return VERDICTS[verdict]


def verdicts(report: pathlib.Path) -> dict:
    found = {}
    for line in report.read_text().splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) < 4:
            continue
        match = re.fullmatch(r"\*\*(.+)\*\*", cells[2])
        if match and any(cells[1] == claim for claim, _ in CLAIMS):
            found[cells[1]] = short(match.group(1))
    return found


def main() -> None:
    header = ["grid"] + [column for _, column in CLAIMS]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for report in sorted(MEASURED.glob("*/results.md")):
        found = verdicts(report)
        row = [found.get(claim, "–") for claim, _ in CLAIMS]
        if all(v in ("·", "–") for v in row):
            continue
        print(f"| `{report.parent.name}` | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()

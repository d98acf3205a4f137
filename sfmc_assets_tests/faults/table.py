"""`python -m sfmc_assets_tests.faults.table <folder>`: write the fault matrix into docs/faults.md.

The rows come from the fault-matrix tests themselves (`SFMC_FAULT_MATRIX_OUT=...`, set by
`make fault-table`), so the page shows what the suite observed, not what we hoped.
"""

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
START, END = "<!-- fault-table:start -->", "<!-- fault-table:end -->"


def render(rows: list[dict]) -> str:
    recovered = sum(r["outcome"] == "recovered" for r in rows)
    lines = [
        START,
        f"{len(rows)} faults: {recovered} recovered, {len(rows) - recovered} clean failures (each then "
        f"completed by a rerun); rows lost: {sum(r['rows_lost'] for r in rows)}; duplicates: "
        f"{sum(r['duplicates'] for r in rows)}.",
        "",
        "| layer | fault injected | outcome | what the pipeline said / did | rows lost | duplicates |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        detail = r["detail"].replace("|", "\\|")
        lines.append(f"| {r['layer']} | {r['fault']} | {r['outcome']} | {detail} | {r['rows_lost']} | {r['duplicates']} |")
    lines.append(END)
    return "\n".join(lines)


def main() -> None:
    rows = [json.loads(p.read_text()) for p in sorted(Path(sys.argv[1]).glob("*.json"))]
    if not rows:
        raise SystemExit(f"no fault results in {sys.argv[1]}: run the fault-matrix tests with SFMC_FAULT_MATRIX_OUT")
    page = REPO / "docs" / "faults.md"
    text = page.read_text()
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    page.write_text(before + render(rows) + after)
    print(f"docs/faults.md: fault table with {len(rows)} rows")


if __name__ == "__main__":
    main()

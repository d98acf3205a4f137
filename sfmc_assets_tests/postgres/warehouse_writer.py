"""One of several processes replacing the same warehouse days at once (test_warehouse.py).

    python -m sfmc_assets_tests.postgres.warehouse_writer <location> <writer> <rounds> <day,...> <go file>

Waits for the go file, so every writer starts together, then replaces each day `rounds` times in its own
shuffled order. A write of (writer, round) holds `rows(writer, round)` rows, all tagged with both, so a
day's rows show whether it holds exactly one write (nothing lost, nothing doubled, nothing mixed). Each
writer reads the day back after every write: a doubled day that a later write would hide from the final
table is caught the moment it exists. Violations are printed and make the exit status 3.
"""

import datetime as dt
import random
import sys
import time
from pathlib import Path

import polars as pl

from sfmc_assets.lib.warehouse import open_warehouse

TABLE = "concurrency_probe"


def rows(writer: int, round_: int) -> int:
    return 10 + 10 * writer + round_


CHECK = f"""SELECT count(*) AS n, count(DISTINCT contact_key) AS keys, min(writer) AS w0, max(writer) AS w1,
                   min(round) AS r0, max(round) AS r1 FROM segments.{TABLE} WHERE as_of_date = ?"""


def one_write(day: dict[str, object]) -> bool:
    """True when the day's rows are exactly one (writer, round) write."""
    return (day["w0"] is not None and day["w0"] == day["w1"] and day["r0"] == day["r1"]
            and day["n"] == day["keys"] == rows(day["w0"], day["r0"]))  # type: ignore[arg-type]


def main(location: str, writer: int, rounds: int, days: list[dt.date], go: Path) -> int:
    warehouse = open_warehouse(location)
    while not go.exists():
        time.sleep(0.01)
    order, violations = random.Random(writer), 0
    for round_ in range(rounds):
        for day in order.sample(days, len(days)):
            n = rows(writer, round_)
            frame = pl.DataFrame({"as_of_date": [day] * n, "contact_key": [f"C{i:04d}" for i in range(n)],
                                  "writer": [writer] * n, "round": [round_] * n})
            warehouse.replace_days(TABLE, frame, [day])
            seen = warehouse.query(CHECK, [day]).row(0, named=True)
            if not one_write(seen):
                violations += 1
                print(f"VIOLATION {day}: {seen}", flush=True)
    return 3 if violations else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                  [dt.date.fromisoformat(d) for d in sys.argv[4].split(",")], Path(sys.argv[5])))

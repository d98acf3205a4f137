"""`python -m bench [--smoke]`: run every scenario and print the README table."""

import argparse
import json

from bench import extract
from bench._util import RESULTS, save


def table() -> str:
    lines = ["| scenario | ours | baseline | ratio | peak RSS (ours) | machine |", "|---|---|---|---|---|---|"]
    path = RESULTS / "extract.json"
    if path.exists():
        r = json.loads(path.read_text())
        m = r["machine"]
        lines.append(
            f"| extract {r['rows']:,} rows (sandbox, 0 ms latency) | {r['ours']['rows_per_s']:,} rows/s "
            f"| raw floor {r['floor']['rows_per_s']:,} rows/s | {r['ours_vs_floor']}x floor "
            f"| {r['ours']['peak_rss_mb']} MB (floor {r['floor']['peak_rss_mb']} MB) "
            f"| {m['cpus']} CPU, Python {m['python']}, {m['date']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check the suite runs (CI)")
    args = parser.parse_args()
    if args.smoke:
        extract.run(rows=20_000)  # checks it runs; results are not saved
    else:
        save("extract", extract.run(rows=1_000_000))
    print(table())


if __name__ == "__main__":
    main()

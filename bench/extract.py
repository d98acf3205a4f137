"""Scenario `extract`: read a 1,000,000-row data extension from the sandbox.

Ours (the project's extract: typed Polars pages streamed to Parquet, default concurrency) against the
raw floor (the same pages with the same concurrency, only JSON-decoded), each in a fresh process.
"""

import argparse

from bench._util import machine, run_worker, sandbox_process, save

DE = {"data_extension": "campaigns", "key": "Campaign_Engagement"}


def run(rows: int, repeats: int = 1) -> dict[str, object]:
    start, end = "2026-09-01", "2026-10-01"
    with sandbox_process({DE["key"]: rows}, start, end) as discovery:
        payload = {**discovery, "data_extension": DE["data_extension"], "start": start, "end": end,
                   "concurrency": 4}
        results = {mode: [run_worker("bench.extract_worker", {**payload, "mode": mode}) for _ in range(repeats)]
                   for mode in ("floor", "ours")}
    best = {mode: min(rs, key=lambda r: r["seconds"]) for mode, rs in results.items()}
    for r in best.values():
        assert r["rows"] == rows, f"read {r['rows']} rows, expected {rows}"
    return {
        "scenario": "extract",
        "machine": machine(),
        "rows": rows,
        "ours": best["ours"],
        "floor": best["floor"],
        "ours_vs_floor": round(best["floor"]["seconds"] / best["ours"]["seconds"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    result = run(args.rows, args.repeats)
    print(save("extract", result))


if __name__ == "__main__":
    main()

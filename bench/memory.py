"""Scenario `memory`: peak RSS of one partition through extract -> clean -> pandera validation -> write.

One data extension (`Campaign_Engagement`), all rows in one daily window, at 100k, 1M and 3M rows; each
size in a fresh worker process against its own sandbox process (generating 3M rows takes ~15 s). The
measure is the worker's whole-process peak RSS (`resource.getrusage`), with its value after each step.

Target: peak(3M) / peak(1M) <= 1.5. The extract streams pages to Parquet; the clean asset streams the
raw Parquet in batches through clean -> pandera -> the partition file (`clean_and_gate`). What still
grows with the partition is de-duplication's 8-byte key hash per row (sorted to find repeated keys).
"""

import argparse

from bench._util import machine, run_worker, sandbox_process, save

DE = {"data_extension": "campaigns", "key": "Campaign_Engagement"}
SIZES = (100_000, 1_000_000, 3_000_000)
TARGET = 1.5


def measure(rows: int) -> dict[str, object]:
    start, end = "2026-09-01", "2026-09-02"  # one day of sandbox data = one partition
    with sandbox_process({DE["key"]: rows}, start, end) as discovery:
        result = run_worker("bench.memory_worker", {**discovery, "data_extension": DE["data_extension"],
                                                    "start": start, "end": end})
    assert result["rows"] == rows, f"read {result['rows']} rows, expected {rows}"
    return result


def run(sizes: tuple[int, ...] = SIZES) -> dict[str, object]:
    results = {str(n): measure(n) for n in sizes}
    out: dict[str, object] = {"scenario": "memory", "machine": machine(), "data_extension": DE["key"],
                              "sizes": results}
    if "1000000" in results and "3000000" in results:
        r = round(float(results["3000000"]["peak_rss_mb"]) / float(results["1000000"]["peak_rss_mb"]), 2)
        out |= {"ratio_3m_vs_1m": r, "target": TARGET, "met": r <= TARGET}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=lambda s: tuple(int(x) for x in s.split(",")), default=SIZES)
    args = parser.parse_args()
    print(save("memory", run(args.sizes)))


if __name__ == "__main__":
    main()

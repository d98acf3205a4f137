"""Scenario `validation_share`: `clean` + pandera `validate` of 1,000,000 rows built in memory.

The baseline is the transform alone: the share of the time pandera's contract takes on top of `clean`
(target <= 25%), on the clean asset's path (the partition streamed in batches through the gate). The
headline share includes pandera's one-time set-up in each process; `validation_share_warm_median` is the
share of a second, warm validation of the same batches. Each repeat is a fresh process. Timings on this 2-core machine vary between processes,
so the headline share is the median of the repeats' shares; the share from each step's best time and
every repeat are kept too.
"""

import argparse
import statistics

from bench._util import machine, run_worker, save

TARGET = 0.25


def run(rows: int = 1_000_000, repeats: int = 5) -> dict[str, object]:
    runs = [run_worker("bench.validation_worker", {"rows": rows}) for _ in range(repeats)]
    assert all(r["rows"] == rows for r in runs)
    share = statistics.median(float(r["validation_share"]) for r in runs)
    clean_s = min(float(r["clean_s"]) for r in runs)
    validate_s = min(float(r["validate_s"]) for r in runs)
    return {"scenario": "validation_share", "machine": machine(), "rows": rows, "repeats": repeats,
            "validation_share_median": round(share, 3),
            "best_clean_s": clean_s, "best_validate_s": validate_s,
            "validation_share_of_best_times": round(validate_s / (clean_s + validate_s), 3),
            "rows_per_s_median": round(statistics.median(float(r["rows_per_s"]) for r in runs)),
            "clean_rows_per_s_best": round(rows / clean_s), "validate_rows_per_s_best": round(rows / validate_s),
            "validation_share_warm_median": round(statistics.median(float(r["validation_share_warm"]) for r in runs), 3),
            "best_warm_validate_s": min(float(r["warm_validate_s"]) for r in runs),
            "peak_rss_mb": max(float(r["peak_rss_mb"]) for r in runs),
            "runs": runs, "target_share": TARGET, "met": share <= TARGET}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(save("validation_share", run(args.rows, args.repeats)))


if __name__ == "__main__":
    main()

"""Scenario `extract_latency`: 1,000,000 rows of `Campaign_Engagement` at 250 ms of server latency per page.

The sandbox's `latency` fault (`times: null`, set over HTTP before measuring) delays every rowset request,
as a distant Marketing Cloud stack does. Ours (default settings: `DEFAULT_MAX_CONCURRENCY` pages in
flight) against the raw floor (same pages, same concurrency, JSON decode only), the sequential client
(one page at a time following `links.next`, one dict per row: the Singer tap's and the SDKs' way) and
dlt's `rest_api` source (also one page after the other), each in a fresh process.

A sequential reader at 250 ms/page spends about 400 x 0.25 s = 100 s on 1M rows (dlt nearly twice that),
so both are timed on their first `sample_pages` pages (two counts) and extrapolated along the fitted
line `fixed + per_page * pages`: the result says `extrapolated` and keeps the measured samples.

Targets: ours >= 6x sequential, ours >= 0.8x floor.
"""

import argparse
from typing import Any

from bench._util import machine, save
from bench.extract import MODES, PAGE_SIZE, measure, summary
from sfmc_assets.lib.marketing_cloud.client import DEFAULT_MAX_CONCURRENCY

TARGET_VS_SEQUENTIAL = 6.0
TARGET_VS_FLOOR = 0.8
SAMPLE_PAGES = (20, 80)


def run(rows: int = 1_000_000, latency_ms: int = 250, repeats: int = 1,
        concurrency: int = DEFAULT_MAX_CONCURRENCY, sample_pages: tuple[int, int] | None = SAMPLE_PAGES,
        dlt: bool = True) -> dict[str, Any]:
    modes = MODES if dlt else tuple(m for m in MODES if m != "dlt")
    pages = -(-rows // PAGE_SIZE)
    sampled = sample_pages is not None and pages > max(sample_pages)
    sample = {m: sample_pages for m in ("sequential", "dlt") if m in modes} if sampled else {}
    best = measure(rows, latency_ms=latency_ms, repeats=repeats, concurrency=concurrency, modes=modes,
                   sample=sample)  # type: ignore[arg-type]
    ratios = summary(best)
    targets = {"ours_vs_sequential": TARGET_VS_SEQUENTIAL, "ours_vs_floor": TARGET_VS_FLOOR}
    return {
        "scenario": "extract_latency",
        "machine": machine(),
        "rows": rows,
        "latency_ms": latency_ms,
        "page_size": PAGE_SIZE,
        "concurrency": concurrency,
        "repeats": repeats,
        "sampled_modes": sorted(sample),
        **best,
        **ratios,
        "targets": targets,
        "met": {k: ratios[k] >= v for k, v in targets.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--latency-ms", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=DEFAULT_MAX_CONCURRENCY)
    parser.add_argument("--no-dlt", action="store_true")
    parser.add_argument("--full-sequential", action="store_true", help="no sampling: read every page")
    args = parser.parse_args()
    print(save("extract_latency", run(args.rows, args.latency_ms, args.repeats, args.concurrency,
                                      None if args.full_sequential else SAMPLE_PAGES, dlt=not args.no_dlt)))


if __name__ == "__main__":
    main()

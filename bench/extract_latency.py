"""Scenario `extract_latency`: 200,000 rows of `Campaign_Engagement` at 250 ms of server latency per page.

The sandbox's `latency` fault (`times: null`, set over HTTP before measuring) delays every rowset request,
as a distant Marketing Cloud stack does. Ours (default settings: 4 pages in flight) against the raw floor
(same pages, same concurrency, JSON decode only) and the sequential client (one page at a time following
`links.next`, one dict per row: the Singer tap's and the SDKs' way), each in a fresh process.

Targets: ours >= 6x sequential, ours >= 0.8x floor. With 4 pages in flight the latency-bound ceiling
over a sequential reader is about 4x plus whatever per-row work the sequential reader adds.
"""

import argparse

from bench._util import machine, save
from bench.extract import measure, ratio

TARGET_VS_SEQUENTIAL = 6.0
TARGET_VS_FLOOR = 0.8


def run(rows: int = 200_000, latency_ms: int = 250, repeats: int = 1) -> dict[str, object]:
    best = measure(rows, latency_ms=latency_ms, repeats=repeats)
    vs_seq, vs_floor = ratio(best["ours"], best["sequential"]), ratio(best["ours"], best["floor"])
    return {
        "scenario": "extract_latency",
        "machine": machine(),
        "rows": rows,
        "latency_ms": latency_ms,
        "page_size": 2500,
        "concurrency": 4,
        "repeats": repeats,
        "ours": best["ours"],
        "floor": best["floor"],
        "sequential": best["sequential"],
        "ours_vs_floor": vs_floor,
        "ours_vs_sequential": vs_seq,
        "targets": {"ours_vs_sequential": TARGET_VS_SEQUENTIAL, "ours_vs_floor": TARGET_VS_FLOOR},
        "met": {"ours_vs_sequential": vs_seq >= TARGET_VS_SEQUENTIAL, "ours_vs_floor": vs_floor >= TARGET_VS_FLOOR},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--latency-ms", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    print(save("extract_latency", run(args.rows, args.latency_ms, args.repeats)))


if __name__ == "__main__":
    main()

"""Scenario `extract`: read a 1,000,000-row data extension from the sandbox.

Ours (the project's extract: typed Polars pages streamed to Parquet, default concurrency) against the
raw floor (the same pages with the same concurrency, only JSON-decoded) and a sequential client (page by
page following `links.next`, one Python dict per row, as the Singer tap and the SDKs read), each in a
fresh process. `measure` is shared with `extract_latency` (the same, with server latency per page).
"""

import argparse

import requests

from bench._util import machine, run_worker, sandbox_process, save

DE = {"data_extension": "campaigns", "key": "Campaign_Engagement"}
MODES = ("floor", "sequential", "ours")


def set_latency(discovery: dict[str, object], latency_ms: int) -> None:
    """Every rowset request (first page and token pages) waits `latency_ms` in the sandbox."""
    url = str(discovery["auth_base_uri"]).rstrip("/") + "/_sandbox/faults"
    faults = [{"route": "rowset", "kind": "latency", "latency_ms": latency_ms, "times": None}] if latency_ms else []
    resp = requests.post(url, json=faults, timeout=30)
    resp.raise_for_status()
    active = resp.json()
    assert len(active) == len(faults), f"the sandbox did not take the faults: {active}"


def measure(rows: int, *, latency_ms: int = 0, repeats: int = 1, concurrency: int = 4,
            modes: tuple[str, ...] = MODES) -> dict[str, dict[str, object]]:
    """Best-of-`repeats` result per mode, each run in a fresh process against one sandbox process."""
    start, end = "2026-09-01", "2026-10-01"
    with sandbox_process({DE["key"]: rows}, start, end) as discovery:
        set_latency(discovery, latency_ms)
        payload = {**discovery, "data_extension": DE["data_extension"], "start": start, "end": end,
                   "concurrency": concurrency}
        results = {mode: [run_worker("bench.extract_worker", {**payload, "mode": mode}) for _ in range(repeats)]
                   for mode in modes}
    best = {mode: min(rs, key=lambda r: r["seconds"]) for mode, rs in results.items()}
    for r in best.values():
        assert r["rows"] == rows, f"{r['mode']} read {r['rows']} rows, expected {rows}"
    return best


def ratio(faster: dict[str, object], slower: dict[str, object]) -> float:
    """How many times faster `faster` was than `slower` (ratio of seconds)."""
    return round(float(slower["seconds"]) / float(faster["seconds"]), 2)  # type: ignore[arg-type]


def run(rows: int, repeats: int = 1) -> dict[str, object]:
    best = measure(rows, repeats=repeats)
    return {
        "scenario": "extract",
        "machine": machine(),
        "rows": rows,
        "latency_ms": 0,
        "concurrency": 4,
        "repeats": repeats,
        "ours": best["ours"],
        "floor": best["floor"],
        "sequential": best["sequential"],
        "ours_vs_floor": ratio(best["ours"], best["floor"]),
        "ours_vs_sequential": ratio(best["ours"], best["sequential"]),
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

"""Scenario `extract`: read a 1,000,000-row data extension from the sandbox at 0 ms of server latency.

Ours (the project's extract: typed Polars pages streamed to Parquet, default concurrency) against the
raw floor (the same pages with the same concurrency, only JSON-decoded), a sequential client (page by
page following `links.next`, one Python dict per row, as the Singer tap and the SDKs read) and dlt's
`rest_api` source writing Parquet (`extract_dlt_worker`), each in a fresh process. `measure` is shared
with `extract_latency` (the same, with server latency per page).

The sandbox must not be what is measured. It keeps each page it has encoded (per data version), and
`measure` first reads every page once (`server_cold`, which builds them), then measures `server`: the
same pages with the same concurrency, bodies read and dropped, several times faster than any client
here. The sandbox's CPU seconds during each run are recorded (`sandbox_cpu_s`) next to the client's.
"""

import argparse
from typing import Any

import requests

from bench._util import machine, process_cpu_s, run_worker, sandbox_process, save
from sfmc_assets.lib.marketing_cloud.client import DEFAULT_MAX_CONCURRENCY

DE = {"data_extension": "campaigns", "key": "Campaign_Engagement"}
MODES = ("server", "floor", "sequential", "ours", "dlt")
PAGE_SIZE = 2500
TARGET_VS_FLOOR = 0.7
TARGET_VS_DLT = 5.0


def set_latency(discovery: dict[str, object], latency_ms: int) -> None:
    """Every rowset request (first page and token pages) waits `latency_ms` in the sandbox."""
    url = str(discovery["auth_base_uri"]).rstrip("/") + "/_sandbox/faults"
    faults = [{"route": "rowset", "kind": "latency", "latency_ms": latency_ms, "times": None}] if latency_ms else []
    resp = requests.post(url, json=faults, timeout=30)
    resp.raise_for_status()
    active = resp.json()
    assert len(active) == len(faults), f"the sandbox did not take the faults: {active}"


def _run(mode: str, payload: dict[str, Any], sandbox_pid: int) -> dict[str, Any]:
    """One worker process; the sandbox's CPU seconds over the same run are added to its result."""
    module = "bench.extract_dlt_worker" if mode == "dlt" else "bench.extract_worker"
    before = process_cpu_s(sandbox_pid)
    result = run_worker(module, {**payload, "mode": mode})
    result["sandbox_cpu_s"] = round(process_cpu_s(sandbox_pid) - before, 2)
    return result


def _sampled(mode: str, payload: dict[str, Any], sandbox_pid: int, samples: tuple[int, int],
             rows: int) -> dict[str, Any]:
    """A sequential reader timed on its first `samples` pages and extrapolated to the whole read.

    A reader that requests one page after the other pays the same per page throughout, so two sampled
    runs fit `seconds = fixed + per_page * pages` (fixed: process and pipeline set-up, a few seconds
    for dlt); the result is that line at the full page count, marked `extrapolated`.
    """
    runs = [_run(mode, {**payload, "max_pages": n}, sandbox_pid) for n in samples]
    (p1, t1), (p2, t2) = ((int(r["pages"]), float(r["seconds"])) for r in runs)
    per_page = (t2 - t1) / (p2 - p1)
    fixed = max(0.0, t1 - per_page * p1)
    pages = -(-rows // PAGE_SIZE)
    seconds = fixed + per_page * pages
    return {"mode": mode, "rows": rows, "pages": pages, "seconds": round(seconds, 3),
            "rows_per_s": round(rows / seconds), "peak_rss_mb": max(float(r["peak_rss_mb"]) for r in runs),
            "extrapolated": True, "fit": {"fixed_s": round(fixed, 3), "per_page_s": round(per_page, 4)},
            "samples": runs}


def measure(rows: int, *, latency_ms: int = 0, repeats: int = 1, concurrency: int = DEFAULT_MAX_CONCURRENCY,
            modes: tuple[str, ...] = MODES, sample: dict[str, tuple[int, int]] | None = None,
            dlt_repeats: int = 1) -> dict[str, dict[str, Any]]:
    """Best-of-`repeats` result per mode (repeats interleaved), each a fresh process, one sandbox process.

    Every page is read once at 0 ms first (`server_cold`: the sandbox encodes and keeps them), then the
    latency is set and every mode reads the same pages. Modes in `sample` are measured on two page
    counts and extrapolated (`_sampled`).
    """
    start, end = "2026-09-01", "2026-10-01"
    sample = sample or {}
    with sandbox_process({DE["key"]: rows}, start, end) as discovery:
        pid = int(discovery.pop("sandbox_pid"))  # type: ignore[call-overload]
        payload = {**discovery, "data_extension": DE["data_extension"], "start": start, "end": end,
                   "concurrency": concurrency}
        set_latency(discovery, 0)
        cold = _run("server", payload, pid)
        set_latency(discovery, latency_ms)
        results: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
        for mode in modes:
            if mode in sample:
                results[mode].append(_sampled(mode, payload, pid, sample[mode], rows))
        for i in range(max(repeats, dlt_repeats)):
            for mode in modes:
                if mode not in sample and i < (dlt_repeats if mode == "dlt" else repeats):
                    results[mode].append(_run(mode, payload, pid))
    best = {mode: min(rs, key=lambda r: r["seconds"]) for mode, rs in results.items()}
    for r in [cold, *best.values()]:
        assert r["rows"] == rows, f"{r['mode']} read {r['rows']} rows, expected {rows}"
    return {"server_cold": cold, **best}


def ratio(faster: dict[str, Any], slower: dict[str, Any]) -> float:
    """How many times faster `faster` was than `slower` (ratio of seconds)."""
    return round(float(slower["seconds"]) / float(faster["seconds"]), 2)


def summary(best: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Ratios of ours to each baseline, and how much of the machine the sandbox took while ours ran."""
    ours = best["ours"]
    out: dict[str, Any] = {f"ours_vs_{m}": ratio(ours, best[m]) for m in ("floor", "sequential", "dlt") if m in best}
    out["server_vs_ours"] = ratio(best["server"], ours)
    out["sandbox_cpu_share_during_ours"] = round(
        ours["sandbox_cpu_s"] / (ours["sandbox_cpu_s"] + ours["cpu_s"]), 2)
    return out


def run(rows: int, repeats: int = 1, concurrency: int = DEFAULT_MAX_CONCURRENCY,
        dlt: bool = True) -> dict[str, Any]:
    modes = MODES if dlt else tuple(m for m in MODES if m != "dlt")
    best = measure(rows, repeats=repeats, concurrency=concurrency, modes=modes)
    ratios = summary(best)
    targets = {"ours_vs_floor": TARGET_VS_FLOOR} | ({"ours_vs_dlt": TARGET_VS_DLT} if dlt else {})
    return {
        "scenario": "extract",
        "machine": machine(),
        "rows": rows,
        "latency_ms": 0,
        "page_size": PAGE_SIZE,
        "concurrency": concurrency,
        "repeats": repeats,
        **best,
        **ratios,
        "targets": targets,
        "met": {k: ratios[k] >= v for k, v in targets.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=DEFAULT_MAX_CONCURRENCY)
    parser.add_argument("--no-dlt", action="store_true")
    args = parser.parse_args()
    print(save("extract", run(args.rows, args.repeats, args.concurrency, dlt=not args.no_dlt)))


if __name__ == "__main__":
    main()

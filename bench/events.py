"""Scenario `events`: one UTC day of `SentEvent` tracking records through the SOAP API.

The sandbox (its own process) holds `sends_per_day` sends a day; each run is a fresh worker process
(bench/events_worker.py), `floor` and `ours` alternating so both see the same machine state, the better of
each kept:

- ours: the raw layer's read of one day (`extract_events`: Retrieve + ContinueRequest, lxml parsing, Polars
  typing, a Parquet partition), reconciled (rows written = objects returned);
- floor: the same requests with bare `requests`, answers kept as bytes (status, RequestID and the objects
  counted by a regular expression).

A SOAP cursor is read one page after the other (each `ContinueRequest` needs the previous answer), so both
are sequential; with `latency_ms` the sandbox delays every SOAP answer, as a distant stack does.
"""

import argparse
import json
import urllib.request

from bench._util import machine, run_worker, sandbox_process, save

DAY, START, END = "2026-10-02", "2026-10-01", "2026-10-03"


def _latency(info: dict, latency_ms: int) -> None:
    faults = [{"route": "soap", "kind": "latency", "latency_ms": latency_ms, "times": None}] if latency_ms else []
    request = urllib.request.Request(f"{info['auth_base_uri']}_sandbox/faults", data=json.dumps(faults).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=30).read()


def run(sends_per_day: int = 200_000, repeats: int = 2, latency_ms: int = 0) -> dict[str, object]:
    best: dict[str, dict] = {}
    with sandbox_process({"Contacts_DE": 20_000}, START, END, extra=["--sends-per-day", str(sends_per_day)]) as info:
        _latency(info, latency_ms)
        for _ in range(repeats):
            for mode in ("floor", "ours"):
                r = run_worker("bench.events_worker", {"discovery": info, "mode": mode, "event": "sent", "day": DAY})
                if mode not in best or r["seconds"] < best[mode]["seconds"]:
                    best[mode] = r
    ours, floor = best["ours"], best["floor"]
    assert ours["objects"] == floor["objects"] and ours["pages"] == floor["pages"], (ours, floor)
    return {"scenario": "events", "machine": machine(), "event": "sent", "objects": ours["objects"],
            "pages": ours["pages"], "latency_ms": latency_ms, "repeats": repeats, "ours": ours, "floor": floor,
            "ours_vs_floor": round(float(floor["seconds"]) / float(ours["seconds"]), 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sends-per-day", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--latency-ms", type=int, default=0)
    args = parser.parse_args()
    print(save("events", run(args.sends_per_day, args.repeats, args.latency_ms)))


if __name__ == "__main__":
    main()

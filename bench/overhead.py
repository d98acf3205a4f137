"""Scenario `overhead`: a 7-day and then a one-day run of every asset, today's code against the older one.

Issue #14 measured 80 s for a 7-day run of the 11 assets, mostly steps waiting for a new Python process
each (importing Dagster, Polars, pandera, DuckDB). Each variant below runs in a fresh home (instance,
lake, warehouse) over the same sandbox data: first days 1-7 as one ranged run, then day 8 alone (the
daily run after a backfill; its segment windows need the earlier days). Targets: 7 days <= 25 s and one
day <= 15 s of run time (the run record's start to end).

Variants: the baseline commit as installed then (no compiled bytecode, so every process compiled
Dagster from source where PYTHONDONTWRITEBYTECODE is set, as in this environment) and with bytecode;
today's code with steps forked from a preloaded server (the default), with Dagster's default `spawn`, and
with every step in the run's own process.
"""

import argparse
import datetime as dt
import tempfile
from pathlib import Path

from bench._pipeline import BASELINE_REF, REPO, checkout, days, make_home, run_range, sandboxes
from bench._util import machine, save

START = dt.date(2026, 8, 1)
VARIANTS = {  # name: (code, executor, start method, bytecode, steps at once (None: CPU count))
    "before, as installed (no bytecode)": ("baseline", "multiprocess", None, False, None),
    "before, with bytecode": ("baseline", "multiprocess", None, True, None),
    "ours: multiprocess, forkserver + preload (default)": ("ours", "multiprocess", "forkserver", True, None),
    "ours: forkserver + preload, 4 steps at once": ("ours", "multiprocess", "forkserver", True, 4),
    "ours: multiprocess, spawn": ("ours", "multiprocess", "spawn", True, None),
    "ours: in_process": ("ours", "in_process", None, True, None),
}


def run(events_per_day: int = 1000, only: list[str] | None = None, baseline_ref: str = BASELINE_REF) -> dict[str, object]:
    n_days = 8
    rows = {"Contacts_DE": events_per_day // 10 * n_days, "Campaign_Engagement": events_per_day * n_days,
            "Web_Activities": events_per_day * n_days}
    end = START + dt.timedelta(days=n_days)
    results: dict[str, dict[str, object]] = {}
    with checkout(baseline_ref) as baseline:
        for name, (which, executor, method, bytecode, steps) in VARIANTS.items():
            if only and name not in only:
                continue
            code = baseline if which == "baseline" else REPO
            with sandboxes(code, rows, START, end, 0.2) as (mc, aep), \
                    tempfile.TemporaryDirectory(prefix="sfmc_bench_overhead_") as tmp:
                home = Path(tmp)
                make_home(home, code, START, mc, aep)
                kw = {"executor": executor, "start_method": method, "bytecode": bytecode, "max_concurrent": steps}
                week = run_range(home, code, *days(START, 7), **kw)
                day = run_range(home, code, *days(START + dt.timedelta(days=7), 1), **kw)
            results[name] = {"seven_days": week, "one_day": day}
            print(f"  {name}: 7 days {week['run_s']} s, 1 day {day['run_s']} s", flush=True)
    before = results.get("before, as installed (no bytecode)")
    ours = results.get("ours: multiprocess, forkserver + preload (default)")
    summary: dict[str, object] = {}
    if before and ours:
        summary = {key: round(float(before[key]["run_s"]) / float(ours[key]["run_s"]), 1)  # type: ignore[index]
                   for key in ("seven_days", "one_day")}
    return {"scenario": "overhead", "machine": machine(), "baseline_ref": baseline_ref,
            "events_per_day": events_per_day, "variants": results, "speedup_vs_before": summary,
            "targets_s": {"seven_days": 25, "one_day": 15}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events-per-day", type=int, default=1000)
    parser.add_argument("--baseline-ref", default=BASELINE_REF)
    args = parser.parse_args()
    print(save("overhead", run(args.events_per_day, baseline_ref=args.baseline_ref)))


if __name__ == "__main__":
    main()

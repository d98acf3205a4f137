"""`python -m bench [--smoke] [--only NAME,...]`: run the scenarios and print the README table.

Full runs save `bench/results/<scenario>.json`; `--smoke` runs tiny sizes of every scenario except the
backfill (whose smallest run is about a minute of Dagster process start-up) to check the suite still
runs, saves nothing, and prints the table of the saved results.
"""

import argparse
import json
import time
from collections.abc import Callable

from bench import (
    backfill,
    events,
    extract,
    extract_latency,
    memory,
    overhead,
    publish,
    publish_days,
    scaling,
    validation_share,
)
from bench._util import RESULTS, save

FULL: dict[str, Callable[[], dict[str, object]]] = {
    "extract": lambda: extract.run(rows=1_000_000, repeats=2),
    "extract_latency": lambda: extract_latency.run(rows=1_000_000, latency_ms=250),
    "memory": lambda: memory.run(memory.SIZES),
    "validation_share": lambda: validation_share.run(rows=1_000_000),
    "backfill": lambda: backfill.run(days=90, sample=5),
    "publish": lambda: publish.run(rows=1_000_000, repeats=1),
    "events": lambda: events.run(sends_per_day=200_000, repeats=2),
    "overhead": lambda: overhead.run(events_per_day=1000),
    "scaling": lambda: scaling.run(sizes=(30, 90, 365), baseline_sizes=(30, 90)),
    "publish_days": lambda: publish_days.run(n_days=90, processing_s=120.0, baseline_days=3),
}
SMOKE: dict[str, Callable[[], dict[str, object]]] = {
    "extract": lambda: extract.run(rows=20_000),
    "extract_latency": lambda: extract_latency.run(rows=20_000, latency_ms=50, sample_pages=(2, 5), dlt=False),
    "memory": lambda: memory.run((20_000,)),
    "validation_share": lambda: validation_share.run(rows=20_000, repeats=1),
    "publish": lambda: publish.run(rows=5_000, repeats=1),
    "events": lambda: events.run(sends_per_day=6_000, repeats=1),
    # One variant: the steps in the run's process (the default executor's path is smoked by `scaling`).
    "overhead": lambda: overhead.run(events_per_day=50, only=["ours: in_process"]),
    "scaling": lambda: scaling.run(sizes=(3,), baseline_sizes=(), events_per_day=50),
    "publish_days": lambda: publish_days.run(n_days=3, processing_s=0.5, baseline_days=1, events_per_day=30),
}


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _machine(r: dict) -> str:
    m = r["machine"]
    load = f", load {m['loadavg_1_5_15'][0]}" if "loadavg_1_5_15" in m else ""
    return f"{m['cpus']} CPU, Python {m['python']}, {m['date']}{load}"


def _rate(r: dict) -> str:
    return f"{r['rows_per_s']:,} rows/s{' (extrapolated)' if r.get('extrapolated') else ''}"


def _extract_row(r: dict, label: str) -> str:
    baselines = [f"raw floor (same pages, JSON-decoded only): {_rate(r['floor'])}"]
    ratios = [f"{r['ours_vs_floor']}x floor"]
    for mode, what in (("sequential", "sequential (`links.next`, a dict per row)"),
                       ("dlt", "dlt `rest_api` -> Parquet")):
        if mode in r:
            baselines.append(f"{what}: {_rate(r[mode])}, {r[mode]['peak_rss_mb']:.0f} MB")
            ratios.append(f"{r[f'ours_vs_{mode}']}x {mode}")
    if "server" in r:
        baselines.append(f"sandbox alone (same pages as bytes): {_rate(r['server'])}")
    met = r.get("met") or {}
    if met:
        ratios.append("targets " + ", ".join(f"{k.removeprefix('ours_vs_')} >= {r['targets'][k]}x "
                                             f"{'met' if ok else 'MISSED'}" for k, ok in met.items()))
    return (f"| {label} | {r['ours']['rows_per_s']:,} rows/s | {'; '.join(baselines)} | {', '.join(ratios)} "
            f"| {r['ours']['peak_rss_mb']:.0f} MB (floor {r['floor']['peak_rss_mb']:.0f} MB) | {_machine(r)} |")


def table() -> str:
    lines = ["| scenario | ours | baseline (same run) | ratio | peak RSS (ours) | machine |",
             "|---|---|---|---|---|---|"]
    if r := _load("extract"):
        lines.append(_extract_row(r, f"extract {r['rows']:,} rows of `Campaign_Engagement` (sandbox, 0 ms "
                                     f"latency, {r.get('concurrency', 4)} pages in flight)"))
    if r := _load("extract_latency"):
        lines.append(_extract_row(r, f"extract {r['rows']:,} rows of `Campaign_Engagement` (sandbox, "
                                     f"{r['latency_ms']} ms latency per page, {r['concurrency']} pages in "
                                     f"flight)"))
    if r := _load("memory"):
        sizes = r["sizes"]
        peaks = " / ".join(f"{int(n):,}: {s['peak_rss_mb']:.0f} MB" for n, s in sizes.items())
        extract_peaks = " / ".join(f"{s['peak_after_extract_mb']:.0f} MB" for s in sizes.values())
        ratio = f"3M/1M = {r['ratio_3m_vs_1m']}x (target <= {r['target']}x)" if "ratio_3m_vs_1m" in r else "—"
        lines.append(
            f"| memory: one partition (one day) of `{r['data_extension']}`, extract -> clean -> pandera, "
            f"whole-process peak RSS, a fresh process per size | {peaks} | the extract step alone (same "
            f"processes): {extract_peaks} | {ratio} | {peaks.split(' / ')[-1].split(': ')[-1]} "
            f"| {_machine(r)} |")
    if r := _load("validation_share"):
        lines.append(
            f"| clean + pandera validate, {r['rows']:,} rows built in memory (raw layer's typed frame), "
            f"median of {r['repeats']} fresh processes as deployed (runtime dependencies only) "
            f"| {r['rows_per_s_median']:,} rows/s (clean {r['best_clean_s']} s + validate "
            f"{r['best_validate_s']} s, best of each) | clean alone: {r['clean_rows_per_s_best']:,} rows/s "
            f"| pandera {r['validation_share_median']:.0%} of the time (target <= {r['target_share']:.0%}); "
            f"{r['validation_share_with_hypothesis_median']:.0%} with hypothesis installed (dev venv), "
            f"{r['validation_share_warm_median']:.0%} warm | {r['peak_rss_mb']:.0f} MB | {_machine(r)} |")
    if r := _load("backfill"):
        measured = r["one_run_per_day_measured_days"]
        total = (f"{r['one_run_per_day_total_s']:,.0f} s for {r['days']} days "
                 f"{'extrapolated' if r['extrapolated'] else 'measured'}")
        lines.append(
            f"| backfill {r['days']} days x {r['data_extensions']} data extensions, raw + clean "
            f"({r['rows_per_day']['campaigns']:,} events/day per event DE), `dg launch --partition-range` vs "
            f"`dagster asset materialize --partition D` per day | {r['ours_single_run_s']:.0f} s, one run "
            f"| one run per day: {r['one_run_per_day_mean_s']:.1f} s per run ({measured} days measured), "
            f"{total} | {r['speedup']}x faster | — | {_machine(r)} |")
    if r := _load("publish"):
        o, f = r["ours"], r["floor"]
        lines.append(
            f"| publish {r['rows']:,} `Campaign_Engagement` records to the Experience Platform sandbox (one "
            f"day, one {o['file_mb']:.0f} MB Parquet batch, until live) | {o['total_s']:.1f} s = "
            f"{o['records_per_s']:,} records/s: XDM mapping {o['map_s']:.1f} s, Parquet {o['encode_s']:.1f} s, "
            f"Platform processing (sandbox validating every record) {o['platform_s']:.1f} s; client side "
            f"{r['client_records_per_s']:,} records/s | floor (same file, bare create/PUT/complete/poll): "
            f"{f['total_s']:.1f} s, of which processing {f['platform_s']:.1f} s | {r['ours_vs_floor']}x floor "
            f"| {o['peak_rss_mb']:.0f} MB | {_machine(r)} |")
    if r := _load("events"):
        o, f = r["ours"], r["floor"]
        lines.append(
            f"| tracking events: one day of `SentEvent`, {r['objects']:,} objects in {r['pages']} SOAP pages "
            f"(sandbox, {r['latency_ms']} ms latency), Retrieve + ContinueRequest -> typed Parquet partition "
            f"| {o['events_per_s']:,} events/s ({o['seconds']:.1f} s) | raw SOAP floor (same requests, answers "
            f"as bytes): {f['events_per_s']:,} events/s ({f['seconds']:.1f} s) | {r['ours_vs_floor']}x floor "
            f"| {o['peak_rss_mb']:.0f} MB (floor {f['peak_rss_mb']:.0f} MB) | {_machine(r)} |")
    lines += _issue_14_rows()
    return "\n".join(lines)


def _issue_14_rows() -> list[str]:
    """Rows of the pipeline scenarios (issue #14): whole runs, today's code against the baseline commit."""
    rows = []
    if r := _load("overhead"):
        v = r["variants"]
        ours = v.get("ours: multiprocess, forkserver + preload (default)")
        others = "; ".join(f"{name}: {x['seven_days']['run_s']} s / {x['one_day']['run_s']} s"
                           for name, x in v.items() if x is not ours)
        if ours:
            rows.append(
                f"| run of every asset (11), 7 days then 1 day, {r['events_per_day']:,} events/day per event DE "
                f"| {ours['seven_days']['run_s']} s / {ours['one_day']['run_s']} s of run time (forkserver + "
                f"preload; targets {r['targets_s']['seven_days']} s / {r['targets_s']['one_day']} s) | {others} "
                f"| {r['speedup_vs_before'].get('seven_days', '?')}x / {r['speedup_vs_before'].get('one_day', '?')}x "
                f"vs before as installed | — | {_machine(r)} |")
    if r := _load("scaling"):
        ours = ", ".join(f"{n} d: {s} s" for n, s in r["ours_run_s"].items())
        base = ", ".join(f"{n} d: {s} s" for n, s in r["baseline_run_s"].items())
        rows.append(
            f"| backfill of every asset in one run, 30 / 90 / 365 days ({r['events_per_day']:,} events/day per "
            f"event DE, {r['contacts_per_day']} contacts/day) | {ours} | baseline: {base} | 365/90 = "
            f"{r['ours_365_vs_90']}x (target <= {r['target_365_vs_90']}x, linear {r['linear_365_vs_90']}x); 90/30: "
            f"ours {r['ours_90_vs_30']}x, baseline {r['baseline_90_vs_30']}x | — | {_machine(r)} |")
    if r := _load("publish_days"):
        rows.append(
            f"| publish {r['days']} days of `campaigns`, Platform processing {r['processing_s']:.0f} s per batch "
            f"| {r['ours_run_s']} s, days in flight together | baseline (one day after another): "
            f"{r['baseline_run_s_measured']} s for {r['baseline_days_measured']} days, "
            f"{r['baseline_run_s_extrapolated']:,.0f} s for {r['days']} extrapolated | {r['speedup']}x | — "
            f"| {_machine(r)} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check the suite runs (CI)")
    parser.add_argument("--only", default="", help="comma-separated scenarios (default: all)")
    args = parser.parse_args()
    scenarios = SMOKE if args.smoke else FULL
    chosen = [s for s in args.only.split(",") if s] or list(scenarios)
    unknown = [s for s in chosen if s not in scenarios]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; choose from {list(scenarios)}")
    for name in chosen:  # one at a time: never two benchmarks at once
        started = time.perf_counter()
        result = scenarios[name]()
        where = "not saved (smoke)" if args.smoke else save(name, result)
        print(f"{name}: {time.perf_counter() - started:.0f} s, {where}", flush=True)
    print(table())


if __name__ == "__main__":
    main()

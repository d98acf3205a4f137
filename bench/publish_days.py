"""Scenario `publish_days`: publishing 90 days of `campaigns` when Platform takes minutes per batch.

Experience Platform processes a batch for minutes before it is live; publishing the days of a backfill
one after another waits those minutes once per day (hours for 90 days). `aep/<name>` keeps up to
`publish_concurrency` days in flight. Here the sandbox's processing delay is set to a realistic value
(`--processing-s`, 120 s by default), 90 days of clean `campaigns` are materialised, then:

- ours: `aep/campaigns` over the 90 days in one run;
- baseline: the baseline commit's `aep/campaigns` (one day after another) over `--baseline-days` days
  in one run, extrapolated to 90 (each day waits the same processing time).
"""

import argparse
import datetime as dt
import tempfile
from pathlib import Path

from bench._pipeline import BASELINE_REF, REPO, checkout, days, make_home, run_range, sandboxes
from bench._util import machine, save

START = dt.date(2025, 9, 1)


def _publish(code: Path, n_days: int, processing_s: float, events_per_day: int) -> dict[str, object]:
    """`code`'s clean `campaigns` for `n_days` days materialised, then its `aep/campaigns` over them, timed."""
    rows = {"Contacts_DE": events_per_day // 10 * n_days, "Campaign_Engagement": events_per_day * n_days,
            "Web_Activities": 10 * n_days}
    with sandboxes(code, rows, START, START + dt.timedelta(days=n_days), processing_s) as (mc, aep), \
            tempfile.TemporaryDirectory(prefix="sfmc_bench_publish_days_") as tmp:
        home = Path(tmp)
        make_home(home, code, START, mc, aep)
        run_range(home, code, *days(START, n_days), select="sfmc/raw/campaigns,sfmc/clean/campaigns")
        return run_range(home, code, *days(START, n_days), select="aep/campaigns")


def run(n_days: int = 90, processing_s: float = 120.0, baseline_days: int = 3, events_per_day: int = 300,
        baseline_ref: str = BASELINE_REF) -> dict[str, object]:
    with checkout(baseline_ref) as baseline:
        ours = _publish(REPO, n_days, processing_s, events_per_day)
        print(f"  ours: {n_days} days in {ours['run_s']} s", flush=True)
        before = _publish(baseline, baseline_days, processing_s, events_per_day)
        print(f"  baseline: {baseline_days} days in {before['run_s']} s", flush=True)
    per_day = float(before["run_s"]) / baseline_days
    return {
        "scenario": "publish_days", "machine": machine(), "baseline_ref": baseline_ref, "days": n_days,
        "processing_s": processing_s, "events_per_day": events_per_day,
        "ours_run_s": ours["run_s"], "baseline_days_measured": baseline_days,
        "baseline_run_s_measured": before["run_s"], "baseline_run_s_extrapolated": round(per_day * n_days, 1),
        "speedup": round(per_day * n_days / float(ours["run_s"]), 1),
        "runs": {"ours": ours, "baseline": before},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--processing-s", type=float, default=120.0)
    parser.add_argument("--baseline-days", type=int, default=3)
    args = parser.parse_args()
    print(save("publish_days", run(args.days, args.processing_s, args.baseline_days)))


if __name__ == "__main__":
    main()

"""Scenario `scaling`: 30-, 90- and 365-day backfills of every asset, each in one run, today's code and
the baseline commit.

Cost should grow with the number of days, not with its square: the baseline re-read every contacts
partition since the start for each day (the `known_contacts` check of two data extensions, and the
contact features), so a backfill of N days read O(N^2) partitions. Target: the 365-day run takes at
most 4.5x the 90-day one (4.06x is exactly linear). The sandbox holds the same volume per day whatever
the range (1,000 events per day in each event data extension, 100 contacts modified per day), so the
contacts known grow with the range, as in a real account.

The baseline's 365-day run is skipped unless asked for (`--baseline-365`): at O(N^2) it takes long.
"""

import argparse
import datetime as dt
import tempfile
from pathlib import Path

from bench._pipeline import BASELINE_REF, REPO, checkout, days, make_home, run_range, sandboxes
from bench._util import machine, save

START = dt.date(2025, 6, 1)


def _backfill(code: Path, n: int, events_per_day: int) -> dict[str, object]:
    rows = {"Contacts_DE": events_per_day // 10 * n, "Campaign_Engagement": events_per_day * n,
            "Web_Activities": events_per_day * n}
    end = START + dt.timedelta(days=n)
    with tempfile.TemporaryDirectory(prefix="sfmc_bench_scaling_") as tmp, \
            sandboxes(code, rows, START, end, 0.2) as (mc, aep):
        home = Path(tmp)
        make_home(home, code, START, mc, aep)
        return run_range(home, code, *days(START, n))


def run(sizes: tuple[int, ...] = (30, 90, 365), baseline_sizes: tuple[int, ...] = (30, 90),
        events_per_day: int = 1000, baseline_ref: str = BASELINE_REF) -> dict[str, object]:
    ours: dict[int, dict[str, object]] = {}
    before: dict[int, dict[str, object]] = {}
    with checkout(baseline_ref) as baseline:
        for n in sizes:
            ours[n] = _backfill(REPO, n, events_per_day)
            print(f"  ours {n} days: {ours[n]['run_s']} s", flush=True)
        for n in baseline_sizes:
            before[n] = _backfill(baseline, n, events_per_day)
            print(f"  baseline {n} days: {before[n]['run_s']} s", flush=True)

    def ratio(runs: dict[int, dict[str, object]], big: int, small: int) -> float | None:
        if big in runs and small in runs:
            return round(float(runs[big]["run_s"]) / float(runs[small]["run_s"]), 2)
        return None

    return {
        "scenario": "scaling", "machine": machine(), "baseline_ref": baseline_ref,
        "events_per_day": events_per_day, "contacts_per_day": events_per_day // 10,
        "ours_run_s": {n: r["run_s"] for n, r in ours.items()},
        "baseline_run_s": {n: r["run_s"] for n, r in before.items()},
        "ours_365_vs_90": ratio(ours, 365, 90), "ours_90_vs_30": ratio(ours, 90, 30),
        "baseline_365_vs_90": ratio(before, 365, 90), "baseline_90_vs_30": ratio(before, 90, 30),
        "speedup_vs_baseline": {n: round(float(before[n]["run_s"]) / float(ours[n]["run_s"]), 1)
                                for n in before if n in ours},
        "target_365_vs_90": 4.5, "linear_365_vs_90": round(365 / 90, 2),
        "runs": {"ours": ours, "baseline": before},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="30,90,365")
    parser.add_argument("--baseline-365", action="store_true", help="also run the baseline over 365 days")
    parser.add_argument("--events-per-day", type=int, default=1000)
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(","))
    print(save("scaling", run(sizes, (30, 90, 365) if args.baseline_365 else (30, 90), args.events_per_day)))


if __name__ == "__main__":
    main()

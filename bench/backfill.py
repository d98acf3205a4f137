"""Scenario `backfill`: 90 days of all three data extensions (raw + clean), through Dagster's CLI.

Ours: the backfill policy in use (`single_run`: one run over the range, per-day results reported by each
step) launched as one run with `dg launch --partition-range`. Baseline, measured in the same run: one run
per day (`dagster asset materialize --partition D`, a process per run, which is what one-run-per-day
costs on any launcher). The baseline runs `--sample` days and is extrapolated to the range linearly
(each day's run does the same work), unless `--sample` equals the range.
"""

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench._util import machine, sandbox_process, save

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SELECTION = "group:sfmc_raw,group:sfmc_clean"


def _env(home: Path, start: dt.date) -> dict[str, str]:
    """The bundled configuration with partitions starting at `start`, in a home of its own."""
    config = yaml.safe_load((REPO / "sfmc_assets" / "config" / "data_extensions.yaml").read_text())
    config["start_date"] = start.isoformat()
    (home / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return {**os.environ, "SFMC_ASSETS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home"),
            "SFMC_ASSETS_CONFIG": str(home / "config.yaml"),
            "SFMC_ASSETS_EXECUTOR": os.environ.get("SFMC_ASSETS_EXECUTOR", "multiprocess")}


def _timed(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    out = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return time.perf_counter() - started


def run(days: int = 90, sample: int = 10, rows_per_day: int = 1000) -> dict[str, object]:
    start = dt.date(2026, 8, 1)
    end = start + dt.timedelta(days=days)
    rows = {"Contacts_DE": rows_per_day * days // 10, "Campaign_Engagement": rows_per_day * days,
            "Web_Activities": rows_per_day * days}
    with tempfile.TemporaryDirectory(prefix="sfmc_bench_backfill_") as tmp:
        home = Path(tmp)
        (home / "dagster_home").mkdir()
        with sandbox_process(rows, start.isoformat(), end.isoformat(), state_dir=home / "sandboxes"):
            env = _env(home, start)
            last = (end - dt.timedelta(days=1)).isoformat()
            ours = _timed([str(BIN / "dg"), "launch", "--assets", SELECTION,
                           "--partition-range", f"{start.isoformat()}...{last}"], env)
            sample_days = [(start + dt.timedelta(days=i)).isoformat() for i in range(min(sample, days))]
            per_day = [
                _timed([str(BIN / "dagster"), "asset", "materialize", "-m", "sfmc_assets.definitions",
                        "--select", SELECTION, "--partition", d], env)
                for d in sample_days
            ]
    per_run = sum(per_day) / len(per_day)
    baseline = per_run * days
    return {
        "scenario": "backfill", "machine": machine(), "days": days, "data_extensions": 3,
        "rows_per_day": {"contacts": rows["Contacts_DE"] // days, "campaigns": rows_per_day, "activities": rows_per_day},
        "ours_single_run_s": round(ours, 1),
        "one_run_per_day_measured_days": len(per_day),
        "one_run_per_day_mean_s": round(per_run, 2),
        "one_run_per_day_total_s": round(baseline, 1),
        "extrapolated": len(per_day) < days,
        "speedup": round(baseline / ours, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--sample", type=int, default=10, help="days run one-per-run for the baseline")
    args = parser.parse_args()
    print(save("backfill", run(args.days, args.sample)))


if __name__ == "__main__":
    main()

"""The daily job and its schedule: yesterday, plus a look-back for rows that arrive late.

Marketing Cloud rows can be written after their delta day ends (imports, late tracking); re-reading the
last `lookback_days` partitions each night picks them up, and because a rerun replaces a partition,
re-reading never duplicates.
"""

import datetime as dt
from collections.abc import Sequence
from typing import Any

import dagster as dg

from sfmc_assets.defs.clean.assets import clean_key
from sfmc_assets.defs.deletes.assets import deletes_key
from sfmc_assets.defs.experience_platform.assets import publish_key
from sfmc_assets.defs.marketing_cloud.assets import raw_key
from sfmc_assets.defs.segments.assets import FEATURES_KEY, MEMBERSHIP_KEY
from sfmc_assets.lib.config import ProjectConfig, current_config

SCHEDULE_HOUR_UTC = 2
#: What `define_asset_job` returns (its class is not part of Dagster's public API).
AssetJob = Any


def build_daily_job(name: str, selection: dg.AssetSelection) -> AssetJob:
    return dg.define_asset_job(
        name,
        selection=selection,
        description="One UTC day of every configured data extension: extract, clean and gate, publish, "
        "and the segment tables.",
        tags={"domain": "marketing"},
    )


def partitions_to_run(scheduled: dt.datetime, lookback_days: int) -> list[str]:
    """Yesterday (relative to the tick, UTC) and the `lookback_days` days before it, oldest first."""
    yesterday = scheduled.astimezone(dt.timezone.utc).date() - dt.timedelta(days=1)
    return [(yesterday - dt.timedelta(days=i)).isoformat() for i in range(lookback_days, -1, -1)]


def build_daily_schedule(
    job: AssetJob, lookback_days: int, first_partition: dt.date, cron: str = f"0 {SCHEDULE_HOUR_UTC} * * *",
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"{job.name}_schedule",
        job=job,
        cron_schedule=cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"`{cron}` (UTC): yesterday's partition and the {lookback_days} day(s) before it (late rows).",
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> Sequence[dg.RunRequest]:
        tick = context.scheduled_execution_time or dt.datetime.now(dt.timezone.utc)
        return [
            dg.RunRequest(run_key=f"{key}@{tick.date().isoformat()}", partition_key=key,
                          tags={"sfmc/lookback": str(key != partitions_to_run(tick, 0)[-1]).lower()})
            for key in partitions_to_run(tick, lookback_days)
            if dt.date.fromisoformat(key) >= first_partition
        ]

    return _schedule


def keys_by_start(config: ProjectConfig) -> dict[dt.date, list[dg.AssetKey]]:
    """The daily assets grouped by first partition (a job holds assets of one partitions definition)."""
    groups: dict[dt.date, list[dg.AssetKey]] = {}
    for de in config.data_extensions:
        keys = [raw_key(de), clean_key(de)] + ([publish_key(de)] if de.aep else [])
        if de.sync == "full" or de.reconcile_keys == "daily":
            keys.append(deletes_key(de))
        groups.setdefault(config.start_date_of(de), []).extend(keys)
    if config.segments is not None:
        feeding = (config.segments.contacts, config.segments.engagement, config.segments.activities)
        start = max(config.start_date_of(config.data_extension(name)) for name in feeding)
        groups.setdefault(start, []).extend([FEATURES_KEY, MEMBERSHIP_KEY])
    return groups


@dg.definitions
def daily_jobs() -> dg.Definitions:
    """`sfmc_daily_job` (and one more job per other start date), each with its 02:00 UTC schedule."""
    config = current_config()
    jobs, schedules = [], []
    for start, keys in sorted(keys_by_start(config).items()):
        name = "sfmc_daily_job" if not jobs else f"sfmc_daily_job_from_{start:%Y%m%d}"
        job = build_daily_job(name, dg.AssetSelection.assets(*keys))
        jobs.append(job)
        schedules.append(build_daily_schedule(job, config.lookback_days, start))
    weekly = [de for de in config.data_extensions if de.reconcile_keys == "weekly"]
    for start in sorted({config.start_date_of(de) for de in weekly}):
        keys = [deletes_key(de) for de in weekly if config.start_date_of(de) == start]
        suffix = "" if start == min(config.start_date_of(de) for de in weekly) else f"_from_{start:%Y%m%d}"
        job = dg.define_asset_job(f"sfmc_key_reconciliation{suffix}", selection=dg.AssetSelection.assets(*keys),
                                  description="Reads every key of the data extensions with `reconcile_keys: "
                                  "weekly` to find rows deleted in Marketing Cloud.", tags={"domain": "marketing"})
        jobs.append(job)
        schedules.append(build_daily_schedule(job, 0, start, cron=f"0 {SCHEDULE_HOUR_UTC + 1} * * 1"))
    return dg.Definitions(jobs=jobs, schedules=schedules)

"""The daily job and its schedule: yesterday, plus a look-back for rows that arrive late.

Marketing Cloud rows can be written after their delta day ends (imports, late tracking); re-reading the
last `lookback_days` partitions each night picks them up, and because a rerun replaces a partition,
re-reading never duplicates.
"""

import datetime as dt
from collections.abc import Sequence

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

SCHEDULE_HOUR_UTC = 2


def build_daily_job(name: str, selection: dg.AssetSelection) -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        name,
        selection=selection,
        description="Extract, clean and gate one UTC day of every configured data extension.",
        tags={"domain": "marketing"},
    )


def partitions_to_run(scheduled: dt.datetime, lookback_days: int) -> list[str]:
    """Yesterday (relative to the tick, UTC) and the `lookback_days` days before it, oldest first."""
    yesterday = scheduled.astimezone(dt.timezone.utc).date() - dt.timedelta(days=1)
    return [(yesterday - dt.timedelta(days=i)).isoformat() for i in range(lookback_days, -1, -1)]


def build_daily_schedule(
    job: UnresolvedAssetJobDefinition, lookback_days: int, first_partition: dt.date
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"{job.name}_schedule",
        job=job,
        cron_schedule=f"0 {SCHEDULE_HOUR_UTC} * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Every day at {SCHEDULE_HOUR_UTC:02d}:00 UTC: yesterday's partition and the "
        f"{lookback_days} day(s) before it (late rows).",
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

"""Jobs and schedules: each data extension read at its own frequency, plus a look-back for late rows.

Each data extension has a `schedule` (once, hourly, daily, weekly) and an `interval` (docs/schedules.md):

- daily (the default): at 02:00 UTC every `interval` days, the days since the previous run (yesterday, and
  the `interval - 1` days before it) plus the `lookback_days` earlier days;
- weekly: Mondays at 02:00 UTC every `interval` weeks, the `7 x interval` days since the previous run plus
  the look-back;
- hourly: every `interval` hours, today's partition (its partitions end with today: `end_offset=1`), read
  again and replaced each time; at 02:00 UTC, yesterday and the look-back, after which the day is final;
- once: a job with no schedule, launched by hand (a one-time backfill from the UI or `dg launch`).

Marketing Cloud rows can be written after their delta day ends (imports, late tracking); re-reading the
last `lookback_days` partitions picks them up, and because a rerun replaces a partition, re-reading never
duplicates. Full snapshots and key reconciliation cannot be made for past days (Marketing Cloud keeps no
history), so whatever the period, they are requested for yesterday and the look-back only.

A job holds the assets of one partitions definition (first day, and whether today exists) and one
frequency. `sfmc_daily_job` is the default frequency from the configuration's start date, and also
holds the segment tables.
"""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from sfmc_assets.defs.clean.assets import clean_key
from sfmc_assets.defs.deletes.assets import deletes_key
from sfmc_assets.defs.events.assets import clean_key as event_clean_key
from sfmc_assets.defs.events.assets import raw_key as event_raw_key
from sfmc_assets.defs.events.publish import publish_key as event_publish_key
from sfmc_assets.defs.experience_platform.assets import publish_key
from sfmc_assets.defs.marketing_cloud.assets import raw_key
from sfmc_assets.defs.segments.assets import FEATURES_KEY, MEMBERSHIP_KEY
from sfmc_assets.lib.config import DataExtensionConfig, ProjectConfig, current_config
from sfmc_assets.lib.events import configured

SCHEDULE_HOUR_UTC = 2
#: What `define_asset_job` returns (its class is not part of Dagster's public API).
AssetJob = Any
_UNITS = {"hourly": "hours", "daily": "days", "weekly": "weeks"}


@dataclass(frozen=True)
class Frequency:
    """How often a job runs: `schedule` every `interval` hours, days or weeks."""

    schedule: str = "daily"
    interval: int = 1

    @classmethod
    def of(cls, de: DataExtensionConfig) -> "Frequency":
        return cls(de.schedule, de.interval)

    @property
    def job_name(self) -> str:
        if self.schedule == "once" or self.interval == 1:
            return f"sfmc_{self.schedule}_job"
        return f"sfmc_every_{self.interval}_{_UNITS[self.schedule]}_job"

    @property
    def period_days(self) -> int:
        """Days a run covers besides the look-back: those since the previous run (hourly: today)."""
        return {"daily": self.interval, "weekly": 7 * self.interval}.get(self.schedule, 1)

    def crons(self) -> list[str]:
        nightly = f"0 {SCHEDULE_HOUR_UTC} * * *"
        if self.schedule == "hourly":
            hourly = f"0 */{self.interval} * * *" if self.interval > 1 else "0 * * * *"
            return [hourly] if SCHEDULE_HOUR_UTC % self.interval == 0 else [hourly, nightly]
        return [f"0 {SCHEDULE_HOUR_UTC} * * 1"] if self.schedule == "weekly" else [nightly]

    def due(self, tick: dt.datetime, first: dt.date) -> bool:
        """Whether a tick of the cron is one of every `interval` days or weeks, counted from `first`."""
        days = (tick.date() - first).days
        if self.schedule == "daily":
            return days % self.interval == 0
        if self.schedule == "weekly":
            return (days // 7) % self.interval == 0
        return True


@dataclass
class JobPlan:
    """One job: its assets, their first day and frequency, and which assets only take recent days."""

    start: dt.date
    frequency: Frequency
    keys: list[dg.AssetKey] = field(default_factory=list)
    #: Full snapshots and deletes: only yesterday and the look-back (no history to read past days from).
    recent_only: set[dg.AssetKey] = field(default_factory=set)
    #: Not re-read every hour: key reconciliation reads every key, once a day is enough.
    nightly_only: set[dg.AssetKey] = field(default_factory=set)
    name: str = ""


def _de_keys(de: DataExtensionConfig) -> tuple[list[dg.AssetKey], set[dg.AssetKey], set[dg.AssetKey]]:
    keys = [raw_key(de), clean_key(de)] + ([publish_key(de)] if de.aep else [])
    recent = set(keys) if de.sync == "full" else set()
    nightly: set[dg.AssetKey] = set()
    if de.sync == "full" or de.reconcile_keys == "daily":
        keys.append(deletes_key(de))
        recent.add(deletes_key(de))
        nightly.add(deletes_key(de))
    return keys, recent, nightly


def job_plans(config: ProjectConfig) -> list[JobPlan]:
    """The jobs the configuration needs: one per (first day, frequency), named by frequency."""
    plans: dict[tuple[dt.date, Frequency], JobPlan] = {}
    for de in config.data_extensions:
        start, frequency = config.start_date_of(de), Frequency.of(de)
        plan = plans.setdefault((start, frequency), JobPlan(start, frequency))
        keys, recent, nightly = _de_keys(de)
        plan.keys += keys
        plan.recent_only |= recent
        plan.nightly_only |= nightly
    for event in configured(config):  # tracking events: daily, with the same look-back (late tracking)
        start = (config.tracking_events.start_date if config.tracking_events else None) or config.start_date
        published = [event_publish_key(event)] if config.tracking_events and config.tracking_events.aep else []
        plans.setdefault((start, Frequency()), JobPlan(start, Frequency())).keys += [
            event_raw_key(event), event_clean_key(event), *published]
    if config.segments is not None:
        feeding = [config.segments.contacts, config.segments.activities] + (
            [config.segments.engagement] if config.segments.engagement_source != "events" else [])
        start = max(config.start_date_of(config.data_extension(name)) for name in feeding)
        plans.setdefault((start, Frequency()), JobPlan(start, Frequency())).keys += [FEATURES_KEY, MEMBERSHIP_KEY]
    ordered = sorted(plans.values(), key=lambda p: (p.frequency.job_name, p.start))
    for plan in ordered:
        first = next(p for p in ordered if p.frequency.job_name == plan.frequency.job_name)
        plan.name = plan.frequency.job_name + ("" if plan is first else f"_from_{plan.start:%Y%m%d}")
    return ordered


def build_job(plan: JobPlan) -> AssetJob:
    every = {"once": "launched by hand (no schedule)", "hourly": "every hour", "daily": "every day",
             "weekly": "every week"}[plan.frequency.schedule]
    if plan.frequency.interval > 1:
        every = f"every {plan.frequency.interval} {_UNITS[plan.frequency.schedule]}"
    return dg.define_asset_job(
        plan.name,
        selection=dg.AssetSelection.assets(*plan.keys),
        description=f"Data extensions read {every}, from {plan.start}: extract, clean and gate, publish"
        + (", and the segment tables." if FEATURES_KEY in plan.keys else "."),
        tags={"domain": "marketing", "sfmc/schedule": plan.frequency.schedule},
    )


def partitions_to_run(scheduled: dt.datetime, lookback_days: int) -> list[str]:
    """Yesterday (relative to the tick, UTC) and the `lookback_days` days before it, oldest first."""
    yesterday = scheduled.astimezone(dt.timezone.utc).date() - dt.timedelta(days=1)
    return [(yesterday - dt.timedelta(days=i)).isoformat() for i in range(lookback_days, -1, -1)]


def run_requests(plan: JobPlan, tick: dt.datetime, lookback_days: int) -> list[dg.RunRequest]:
    """What one tick of `plan`'s schedule launches: one run per day, each with the assets due that day."""
    tick = tick.astimezone(dt.timezone.utc)
    frequency = plan.frequency
    days: list[tuple[str, list[dg.AssetKey]]] = []
    if frequency.schedule != "hourly" or tick.hour == SCHEDULE_HOUR_UTC:
        period = 1 if frequency.schedule == "hourly" else frequency.period_days
        recent = set(partitions_to_run(tick, lookback_days))
        for key in partitions_to_run(tick, lookback_days + period - 1):
            days.append((key, [k for k in plan.keys if key in recent or k not in plan.recent_only]))
    if frequency.schedule == "hourly" and tick.hour % frequency.interval == 0:
        days.append((tick.date().isoformat(), [k for k in plan.keys if k not in plan.nightly_only]))
    yesterday = partitions_to_run(tick, 0)[-1]
    return [
        dg.RunRequest(
            run_key=f"{key}@{tick.isoformat()}", partition_key=key,
            asset_selection=None if selected == plan.keys else selected,
            tags={"sfmc/lookback": str(key < yesterday).lower(), "sfmc/schedule": frequency.schedule},
        )
        for key, selected in days
        if selected and dt.date.fromisoformat(key) >= plan.start
    ]


def build_schedule(job: AssetJob, plan: JobPlan, lookback_days: int, *, crons: list[str] | None = None,
                   description: str | None = None) -> dg.ScheduleDefinition:
    frequency = plan.frequency
    crons = crons or frequency.crons()
    what = ("today's partition (replaced each time); at 02:00 UTC yesterday" if frequency.schedule == "hourly"
            else f"the {frequency.period_days} day(s) up to yesterday")
    every = (f" Every {frequency.interval} {_UNITS[frequency.schedule]} from {plan.start}."
             if frequency.interval > 1 and frequency.schedule != "hourly" else "")

    @dg.schedule(
        name=f"{job.name}_schedule",
        job=job,
        cron_schedule=crons[0] if len(crons) == 1 else crons,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=description or f"`{' | '.join(crons)}` (UTC): {what} and the {lookback_days} day(s) before "
        f"it (late rows).{every}",
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> Sequence[dg.RunRequest] | dg.SkipReason:
        tick = context.scheduled_execution_time or dt.datetime.now(dt.timezone.utc)
        if not frequency.due(tick, plan.start):
            return dg.SkipReason(f"{tick:%Y-%m-%d} is not one of every {frequency.interval} "
                                 f"{_UNITS[frequency.schedule]} counted from {plan.start}")
        return run_requests(plan, tick, lookback_days)

    return _schedule


def _reconciliation_jobs(config: ProjectConfig) -> tuple[list[AssetJob], list[dg.ScheduleDefinition]]:
    """`sfmc_key_reconciliation`: the data extensions with `reconcile_keys: weekly`, Mondays 03:00 UTC."""
    groups: dict[tuple[dt.date, int], list[dg.AssetKey]] = {}
    for de in config.data_extensions:
        if de.reconcile_keys == "weekly":
            end_offset = int(de.schedule == "hourly")  # a job holds one partitions definition
            groups.setdefault((config.start_date_of(de), end_offset), []).append(deletes_key(de))
    jobs, schedules = [], []
    for (start, end_offset), keys in sorted(groups.items()):
        plan = JobPlan(start, Frequency("weekly"), keys, recent_only=set(keys))
        plan.name = "sfmc_key_reconciliation" + (f"_from_{start:%Y%m%d}" if jobs else "") + \
            ("_hourly" if end_offset else "")
        job = dg.define_asset_job(plan.name, selection=dg.AssetSelection.assets(*keys),
                                  description="Reads every key of the data extensions with `reconcile_keys: "
                                  "weekly` to find rows deleted in Marketing Cloud.", tags={"domain": "marketing"})
        jobs.append(job)
        schedules.append(build_schedule(job, plan, 0, crons=[f"0 {SCHEDULE_HOUR_UTC + 1} * * 1"],
                                        description="Mondays 03:00 UTC: yesterday's key reconciliation."))
    return jobs, schedules


@dg.definitions
def scheduled_jobs() -> dg.Definitions:
    """One job per (first day, frequency), each with its schedule (`once` has none), and key reconciliation."""
    config = current_config()
    jobs, schedules = [], []
    for plan in job_plans(config):
        job = build_job(plan)
        jobs.append(job)
        if plan.frequency.schedule != "once":
            schedules.append(build_schedule(job, plan, config.lookback_days))
    more_jobs, more_schedules = _reconciliation_jobs(config)
    return dg.Definitions(jobs=jobs + more_jobs, schedules=schedules + more_schedules)

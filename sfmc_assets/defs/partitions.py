"""Daily partitions in UTC, one definition per start date and end (equal definitions map by identity)."""

import datetime as dt
from functools import cache

import dagster as dg

from sfmc_assets.lib.config import DataExtensionConfig, ProjectConfig


@cache
def daily_partitions(start: dt.date, end_offset: int = 0) -> dg.DailyPartitionsDefinition:
    """UTC days from `start`. With `end_offset=0` the newest partition is the last complete day; with 1 it
    is today, the day in progress (hourly data extensions re-read it through the day)."""
    return dg.DailyPartitionsDefinition(start_date=start.isoformat(), timezone="UTC", end_offset=end_offset)


def partitions_of(de: DataExtensionConfig, config: ProjectConfig) -> dg.DailyPartitionsDefinition:
    """The partitions of every asset of one data extension: today's exists when it is read hourly."""
    return daily_partitions(config.start_date_of(de), 1 if de.schedule == "hourly" else 0)


def frequency_tags(de: DataExtensionConfig) -> dict[str, str]:
    """How often the data extension is read, as tags: the UI filters on them, the freshness policy reads them."""
    return schedule_tags(de.schedule, de.interval)


def schedule_tags(schedule: str, interval: int) -> dict[str, str]:
    """The tags of an asset read every `interval` `schedule` units (`frequency_tags`, tracking events)."""
    return {"sfmc/schedule": schedule, "sfmc/interval": str(interval)}


def partitioned_check(
    name: str, key: dg.AssetKey, partitions_def: dg.PartitionsDefinition, *, description: str,
    blocking: bool = False,
) -> dg.AssetCheckSpec:
    """A check whose result is kept per day (`partitions_def` on checks is a Dagster preview feature)."""
    return dg.AssetCheckSpec(name, asset=key, blocking=blocking, description=description,
                             partitions_def=partitions_def)

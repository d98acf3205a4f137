"""Daily partitions in UTC, one definition per start date (equal definitions map by identity)."""

import datetime as dt
from functools import cache

import dagster as dg


@cache
def daily_partitions(start: dt.date) -> dg.DailyPartitionsDefinition:
    """UTC days from `start`; the newest partition is the last complete day (end_offset=0)."""
    return dg.DailyPartitionsDefinition(start_date=start.isoformat(), timezone="UTC")


def partitioned_check(
    name: str, key: dg.AssetKey, partitions_def: dg.PartitionsDefinition, *, description: str,
    blocking: bool = False,
) -> dg.AssetCheckSpec:
    """A check whose result is kept per day (`partitions_def` on checks is a Dagster preview feature)."""
    return dg.AssetCheckSpec(name, asset=key, blocking=blocking, description=description,
                             partitions_def=partitions_def)

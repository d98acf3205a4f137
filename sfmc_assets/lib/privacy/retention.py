"""Retention: partitions older than their data extension's `privacy.retention_days` are deleted.

`retention_days` covers the copies kept for reprocessing and diagnosis: raw partitions (the source's
rows as read) and quarantine partitions (rejected rows). Clean partitions (and the deletes found in
them) follow `clean_retention_days`, unset by default because the segment tables and key reconciliation
read clean history; what was published follows the Experience Platform dataset's own retention.

A partition of day D is kept while D >= today - N (N whole days after the day ended, counting today),
and deleted once it is older. Deleting is idempotent: a file already gone is no error.
"""

import datetime as dt
from dataclasses import dataclass

from sfmc_assets.lib.config import ProjectConfig
from sfmc_assets.lib.lake import ParquetLake
from sfmc_assets.lib.privacy.lake_erasure import Location


@dataclass(frozen=True)
class Expired:
    """A partition past its retention: where it is and the setting that expired it."""

    location: Location
    setting: str  # `retention_days` or `clean_retention_days`
    days: int


def _layers(ret: int | None, clean_ret: int | None) -> list[tuple[str, str, int]]:
    out = []
    if ret is not None:
        out += [("raw", "retention_days", ret), ("quarantine", "retention_days", ret)]
    if clean_ret is not None:
        out += [("clean", "clean_retention_days", clean_ret), ("deletes", "clean_retention_days", clean_ret)]
    return out


def expired(store: ParquetLake, config: ProjectConfig, today: dt.date) -> list[Expired]:
    """Every partition past its data extension's retention as of `today` (UTC), oldest first."""
    found = []
    for de in config.data_extensions:
        for layer, setting, days in _layers(de.privacy.retention_days, de.privacy.clean_retention_days):
            cutoff = today - dt.timedelta(days=days)
            found += [Expired(Location((de.name,), layer, p), setting, days)
                      for p in store.partitions(["sfmc", layer, de.name]) if dt.date.fromisoformat(p) < cutoff]
    return sorted(found, key=lambda e: (e.location.partition, str(e.location)))


def delete(store: ParquetLake, partitions: list[Expired]) -> None:
    for item in partitions:
        store.delete(item.location.key_path, item.location.partition)

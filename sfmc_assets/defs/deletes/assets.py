"""`sfmc/deletes/<name>`: rows deleted in Marketing Cloud, one partition per day they were found.

Incremental reads only see rows written in a day, never rows removed, so deletes are found two ways:

- `sync: full` data extensions: each partition is a snapshot; the keys the previous snapshot held and
  this one does not are the day's deletes;
- incremental data extensions with `reconcile_keys`: on its cadence, every key of the data extension is
  read (`$fields` = the key columns only, a cheap read) and compared with the keys the clean partitions
  hold up to that day, less the keys already recorded as deleted.

The partition holds the deleted keys, `deleted_on` and `last_seen_on`, for whatever downstream must
forget them. Experience Platform is not changed by it: a replay batch replaces data-lake data but not
Profile records, which need a Privacy Service or data hygiene request (docs/configuration.md).
"""

import datetime as dt
import time
from collections.abc import Iterator

import dagster as dg
import polars as pl

from sfmc_assets.defs.clean.assets import CLEAN_GROUP, clean_key
from sfmc_assets.defs.marketing_cloud.assets import SFMC_POOL, raw_fields
from sfmc_assets.defs.metadata import preview
from sfmc_assets.defs.partitions import frequency_tags, partitioned_check, partitions_of
from sfmc_assets.defs.ranges import DayResult, report
from sfmc_assets.lib.config import DataExtensionConfig, ProjectConfig
from sfmc_assets.lib.extract import check_fields
from sfmc_assets.lib.lake import ParquetLake
from sfmc_assets.lib.marketing_cloud import MarketingCloudClient, MarketingCloudError
from sfmc_assets.lib.marketing_cloud.errors import InconsistentReadError
from sfmc_assets.lib.marketing_cloud.rowset import RowsetReader, discover_fields
from sfmc_assets.lib.personal import personal_columns
from sfmc_assets.lib.snapshots import (
    LAST_SEEN_ON,
    SnapshotUnavailableError,
    alive_keys,
    reconciled_deletes,
    snapshot_deletes,
)
from sfmc_assets.lib.transforms import key_columns, normalise, to_clean
from sfmc_assets.resources import LakeResource, MarketingCloudResource

SHARE_CHECK = "deletes_below_half"


def deletes_key(de: DataExtensionConfig) -> dg.AssetKey:
    return dg.AssetKey(["sfmc", "deletes", de.name])


def has_deletes(de: DataExtensionConfig) -> bool:
    return de.sync == "full" or de.reconcile_keys != "never"


def build_deletes_asset(de: DataExtensionConfig, config: ProjectConfig) -> dg.AssetsDefinition:
    key = deletes_key(de)
    partitions_def = partitions_of(de, config)
    how = ("the keys the previous snapshot held and this day's snapshot does not" if de.sync == "full" else
           f"the keys the clean partitions hold that a read of every key ({de.reconcile_keys}) no longer finds")

    @dg.asset(
        key=key, deps=[clean_key(de)], partitions_def=partitions_def, group_name=CLEAN_GROUP,
        kinds={"salesforce", "polars", "parquet"}, owners=list(de.owners),
        tags={"layer": "clean", "domain": "marketing", "sfmc/kind": de.kind or "generic", **frequency_tags(de)},
        description=f"Rows of `{de.external_key}` deleted in Marketing Cloud, by the day they were found: {how}.",
        check_specs=[partitioned_check(
            SHARE_CHECK, key, partitions_def,
            description="Warns when more than half of the known rows were deleted in one day (often a read "
            "that lost access, rather than real deletes).",
        )],
        pool=SFMC_POOL if de.sync == "incremental" else None,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def _deletes(context: dg.AssetExecutionContext, lake: LakeResource,
                 marketing_cloud: MarketingCloudResource) -> Iterator[dg.MaterializeResult]:
        store = lake.lake()
        client = marketing_cloud.get_client(context.log) if de.sync == "incremental" else None
        days = [_deletes_day(p, de, config, store, client, marketing_cloud) for p in context.partition_keys]
        yield from report(context, key, days)

    return _deletes


def _deletes_day(partition: str, de: DataExtensionConfig, config: ProjectConfig, store: ParquetLake,
                 client: MarketingCloudClient | None, resource: MarketingCloudResource) -> DayResult:
    started = time.monotonic()
    day = dt.date.fromisoformat(partition)
    try:
        if client is None:
            deleted, known = _snapshot_deletes(store, de, day)
        else:
            deleted, known = _reconcile(store, de, config, day, client, resource)
    except (FileNotFoundError, SnapshotUnavailableError, MarketingCloudError) as exc:
        return DayResult(partition, failure=f"Finding the deletes of {de.name} (data extension "
                         f"{de.external_key}) for partition {partition} failed: {exc}")
    path = store.write(deleted, deletes_key(de).path, partition)
    share = deleted.height / known if known else 0.0
    check = dg.AssetCheckResult(
        check_name=SHARE_CHECK, passed=share <= 0.5, severity=dg.AssetCheckSeverity.WARN,
        metadata={"rows_deleted": deleted.height, "rows_known": known, "share": round(share, 4)},
        description=f"{deleted.height} of {known} known rows deleted",
    )
    fields = raw_fields(store, de, partition) if store.exists(clean_key(de).path, partition) else (de.fields or ())
    return DayResult(partition, checks=[check], metadata={
        "dagster/partition_row_count": deleted.height, "rows_known": known, "dagster/uri": str(path),
        "preview": preview(deleted, personal_columns(de, fields)),
        "duration_s": round(time.monotonic() - started, 3),
    })


def _snapshot_deletes(store: ParquetLake, de: DataExtensionConfig, day: dt.date) -> tuple[pl.DataFrame, int]:
    """This snapshot against the previous one; (deleted rows, rows the previous snapshot held)."""
    path = clean_key(de).path
    current = store.scan(path, day.isoformat())
    key = key_columns(de, raw_fields(store, de, day.isoformat()))
    if not key:
        raise SnapshotUnavailableError(f"{de.name} has no primary key: deleted rows cannot be told apart")
    earlier = [p for p in store.partitions(path) if p < day.isoformat()]
    if not earlier:
        empty = current.select(key).clear().collect()
        return snapshot_deletes(empty.lazy(), current, key, day, day), 0
    previous = store.scan(path, earlier[-1])
    known = previous.select(pl.len()).collect().item()
    return snapshot_deletes(previous, current, key, day, dt.date.fromisoformat(earlier[-1])), known


def _reconcile(store: ParquetLake, de: DataExtensionConfig, config: ProjectConfig, day: dt.date,
               client: MarketingCloudClient, resource: MarketingCloudResource) -> tuple[pl.DataFrame, int]:
    """Every key Marketing Cloud holds now against the keys believed alive at the end of `day`."""
    newest = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
    if day < newest - dt.timedelta(days=config.lookback_days):
        raise SnapshotUnavailableError(
            f"key reconciliation compares the keys Marketing Cloud holds now with those known at the end of "
            f"{day}, which is more than {config.lookback_days} day(s) before the newest partition ({newest}): "
            "reconcile a recent day instead")
    fields = check_fields(de, discover_fields(client, de.external_key)).fields
    key = key_columns(de, fields)
    if not key:
        raise SnapshotUnavailableError(f"{de.name} has no primary key: deleted rows cannot be told apart")
    path = clean_key(de).path
    seen = [store.scan(path, p).select(*key, pl.lit(dt.date.fromisoformat(p)).alias(LAST_SEEN_ON))
            for p in store.partitions(path) if p <= day.isoformat()]
    if not seen:
        return pl.DataFrame(schema={c: pl.String for c in key}), 0
    earlier = [store.scan(deletes_key(de).path, p) for p in store.partitions(deletes_key(de).path)
               if p < day.isoformat()]
    alive = alive_keys(pl.concat(seen, how="vertical_relaxed"),
                       pl.concat(earlier, how="vertical_relaxed") if earlier else None, key).collect()
    in_source = _source_keys(de, fields, client, resource)
    return reconciled_deletes(alive.lazy(), in_source, key, day), alive.height


def _source_keys(de: DataExtensionConfig, fields: tuple, client: MarketingCloudClient,
                 resource: MarketingCloudResource, attempts: int = 3) -> pl.LazyFrame:
    """Every key of the data extension (`$fields` = the key columns), under their clean names."""
    key_fields = tuple(f for f in fields if f.name in de.key_columns(fields))
    names = [f.name for f in key_fields]
    for attempt in range(1, attempts + 1):
        reader = RowsetReader(client, de.external_key, key_fields, select=names,
                              order_by=",".join(f"{n} asc" for n in names), page_size=resource.page_size,
                              concurrency=resource.max_concurrency)
        try:
            pages = list(reader.pages())
        except InconsistentReadError as exc:
            if attempt == attempts:
                raise
            client.log.warning("%s: %s; reading the keys again", de.external_key, exc.reason)
            continue
        raw = pl.concat(pages) if pages else pl.DataFrame(schema={n: pl.String for n in names})
        return normalise(to_clean(raw.lazy(), de, key_fields), de, key_fields).select(key_columns(de, key_fields))
    raise AssertionError("unreachable")

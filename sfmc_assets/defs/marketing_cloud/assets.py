"""The raw layer: each configured data extension becomes `sfmc/raw/<name>`, partitioned by UTC day.

A partition is exactly the rows Marketing Cloud holds for that day of the delta column (or, with
`sync: full`, every row: a snapshot), typed, with the source's own column names, written to the lake in
one piece (a rerun replaces it). The file carries the fields as Marketing Cloud described them at read
time. Nothing is renamed or judged here; that is the clean layer's job, so a raw partition can always be
compared with the source.
"""

import datetime as dt
import time
from collections.abc import Iterator

import dagster as dg
import polars as pl

from sfmc_assets.defs.metadata import preview, table_schema
from sfmc_assets.defs.partitions import frequency_tags, partitioned_check, partitions_of
from sfmc_assets.defs.ranges import DayResult, report
from sfmc_assets.lib.config import DataExtensionConfig, ProjectConfig
from sfmc_assets.lib.extract import (
    ExtractResult,
    Window,
    extract_window,
    fields_from_metadata,
    read_from_metadata,
)
from sfmc_assets.lib.lake import ParquetLake
from sfmc_assets.lib.marketing_cloud import (
    AuthenticationError,
    DataExtensionNotFoundError,
    MarketingCloudClient,
    MarketingCloudError,
    SchemaDriftError,
)
from sfmc_assets.lib.marketing_cloud.fields import FieldSpec
from sfmc_assets.lib.marketing_cloud.types import PARSE_ERRORS, frame_schema
from sfmc_assets.lib.personal import personal_source_columns
from sfmc_assets.lib.privacy.keys import PrivacyKeyError
from sfmc_assets.lib.privacy.policy import LakePolicy
from sfmc_assets.lib.snapshots import SnapshotUnavailableError, snapshot_action
from sfmc_assets.lib.transforms import fields_of
from sfmc_assets.resources import LakeResource, MarketingCloudResource

RAW_GROUP = "sfmc_raw"
SOURCE_COUNT_CHECK = "matches_source_count"
#: Concurrency pool shared by every step that calls Marketing Cloud (limit set on the instance).
SFMC_POOL = "sfmc_api"


def raw_key(de: DataExtensionConfig) -> dg.AssetKey:
    return dg.AssetKey(["sfmc", "raw", de.name])


def _column_descriptions(de: DataExtensionConfig, fields: tuple[FieldSpec, ...]) -> dict[str, str]:
    out = {PARSE_ERRORS: "Values that did not parse as their Marketing Cloud type (null when the row is clean)."}
    kind = de.kind_def
    for f in fields:
        role = de.role_of(f.name)
        where = (f"maps to role `{role}`: {kind.role(role).description}" if role and kind
                 else f"clean column `{de.clean_name(f.name)}`")
        required = "" if f.is_nullable else ", required"
        unknown = "" if f.known_type else " (type unknown to this reader: read as text)"
        out[f.name] = f"Marketing Cloud {f.describe()}{required}{unknown}; {where}"
    return out


def _description(de: DataExtensionConfig) -> str:
    what = (f"Rows of the Marketing Cloud data extension `{de.external_key}` whose `{de.delta_column}` falls "
            "in the partition's UTC day" if de.sync == "incremental" else
            f"A full snapshot of the Marketing Cloud data extension `{de.external_key}` (it has no delta "
            "column), taken for the partition's day")
    return f"{what}, typed from the field metadata, source column names kept.\n\n{de.description}"


def build_raw_asset(de: DataExtensionConfig, config: ProjectConfig) -> dg.AssetsDefinition:
    """The extract asset of one data extension."""
    static_metadata: dict[str, object] = {
        "sfmc/external_key": de.external_key,
        "sfmc/sync": de.sync,
        "sfmc/delta_column": de.delta_column or "(none: full snapshots)",
        "sfmc/primary_key": ", ".join(de.key_columns(de.fields or ())) or "(from Marketing Cloud's metadata)",
        "sfmc/on_schema_change": de.on_schema_change,
        "sfmc/server_utc_offset": config.source.utc_offset,
    }
    if de.fields is not None:
        static_metadata["dagster/column_schema"] = table_schema(frame_schema(de.fields),
                                                                _column_descriptions(de, de.fields))
    partitions_def = partitions_of(de, config)

    @dg.asset(
        key=raw_key(de),
        partitions_def=partitions_def,
        group_name=RAW_GROUP,
        check_specs=[partitioned_check(
            SOURCE_COUNT_CHECK, raw_key(de), partitions_def,
            description="Rows written for the day = the `count` Marketing Cloud reported for the read.",
        )],
        kinds={"salesforce", "polars", "parquet"},
        owners=list(de.owners),
        tags={"layer": "raw", "domain": "marketing", "sfmc/kind": de.kind or "generic", "sfmc/sync": de.sync,
              **frequency_tags(de)},
        description=_description(de),
        metadata=static_metadata,
        pool=SFMC_POOL,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def _raw(
        context: dg.AssetExecutionContext, marketing_cloud: MarketingCloudResource, lake: LakeResource
    ) -> Iterator[dg.MaterializeResult]:
        client = marketing_cloud.get_client(context.log)
        days: list[DayResult] = []
        for partition in context.partition_keys:
            day, fatal = _extract_day(partition, client, marketing_cloud, lake.lake(), de, config)
            days.append(day)
            if fatal:
                # Wrong credentials, an unknown key or drift fail every day the same way: stop asking.
                days += [DayResult(p, failure=day.failure) for p in context.partition_keys[len(days):]]
                break
        yield from report(context, raw_key(de), days)

    return _raw


def _snapshot_day(store: ParquetLake, de: DataExtensionConfig, config: ProjectConfig, partition: str) -> str:
    """`read` or `keep` for a full-sync partition (raises `SnapshotUnavailableError` for a lost past day)."""
    taken = [dt.date.fromisoformat(p) for p in store.partitions(raw_key(de).path)]
    today = dt.datetime.now(dt.timezone.utc).date()
    return snapshot_action(dt.date.fromisoformat(partition), today, taken, config.lookback_days)


def _extract_day(
    partition: str,
    client: MarketingCloudClient,
    marketing_cloud: MarketingCloudResource,
    store: ParquetLake,
    de: DataExtensionConfig,
    config: ProjectConfig,
) -> tuple[DayResult, bool]:
    """Extract one UTC day into its partition file.

    A failure is returned (named, with whether it is fatal for every other day too), not raised, so a
    ranged run reports the days that did succeed.
    """
    window = Window.day(partition)
    started = time.monotonic()
    try:
        if de.sync == "full" and _snapshot_day(store, de, config, partition) == "keep":
            return _kept_snapshot(store, de, partition, started), False
        result = extract_window(
            client, de, window,
            lambda schema: store.writer(raw_key(de).path, partition, schema),
            utc_offset=config.source.offset,
            page_size=marketing_cloud.page_size,
            concurrency=marketing_cloud.max_concurrency,
            policy=LakePolicy.load(de, store),
        )
    except PrivacyKeyError as exc:
        return DayResult(partition, failure=f"Extracting {de.name} for partition {partition} failed: {exc}"), True
    except SnapshotUnavailableError as exc:
        return DayResult(partition, failure=f"Extracting {de.name} (data extension {de.external_key}, sync: full) "
                         f"for partition {partition} failed: {exc}"), False
    except MarketingCloudError as exc:
        exc.with_context(data_extension=de.external_key)
        failure = (f"Extracting {de.name} (data extension {de.external_key}) for partition {partition} "
                   f"(window {window}) failed: {exc}")
        fatal = isinstance(exc, (AuthenticationError, DataExtensionNotFoundError, SchemaDriftError))
        return DayResult(partition, failure=failure), fatal
    for warning in result.schema.warnings():
        client.log.warning("%s (%s), partition %s: %s", de.name, de.external_key, partition, warning)
    return _written_day(store, de, partition, window, result, started), False


def _count_check(rows: int, count: int, suppressed: int = 0) -> dg.AssetCheckResult:
    """Rows written + rows of erased contacts left out (the suppression list) = what Marketing Cloud counted."""
    left_out = f" + {suppressed} of erased contacts left out" if suppressed else ""
    return dg.AssetCheckResult(
        check_name=SOURCE_COUNT_CHECK, passed=rows + suppressed == count,
        metadata={"sfmc_reported_count": count, "rows_extracted": rows, "rows_suppressed": suppressed},
        description=f"{rows} rows extracted{left_out}, Marketing Cloud reported {count}",
    )


def _file_metadata(store: ParquetLake, de: DataExtensionConfig, partition: str,
                   fields: tuple[FieldSpec, ...]) -> dict[str, object]:
    """What every raw partition reports: rows, columns, a masked preview, where it is."""
    key_path = raw_key(de).path
    scan = store.scan(key_path, partition)
    head = scan.head(5).collect()
    return {
        "dagster/partition_row_count": scan.select(pl.len()).collect().item(),
        "dagster/column_schema": table_schema(head.schema, _column_descriptions(de, fields)),
        "dagster/uri": str(store.path(key_path, partition)),
        "preview": preview(head, personal_source_columns(de, fields)),
        "rows_with_parse_errors": scan.filter(pl.col(PARSE_ERRORS).is_not_null()).select(pl.len()).collect().item(),
    }


def _written_day(store: ParquetLake, de: DataExtensionConfig, partition: str, window: Window,
                 result: ExtractResult, started: float) -> DayResult:
    metadata = _file_metadata(store, de, partition, result.fields)
    return DayResult(partition, checks=[_count_check(result.rows, result.count, result.suppressed)], metadata={
        **metadata,
        "window_start_utc": window.start.isoformat(),
        "window_end_utc": window.end.isoformat(),
        "sfmc_filter": result.filter or "(none: full snapshot)",
        "sfmc_reported_count": result.count,
        "rows_suppressed": result.suppressed,
        "pages": result.pages,
        "api_calls": result.api_calls,
        "retries": result.retries,
        "read_attempts": result.attempts,
        "schema_changes": dg.MetadataValue.json(result.schema.warnings()),
        "duration_s": round(time.monotonic() - started, 3),
    })


def _kept_snapshot(store: ParquetLake, de: DataExtensionConfig, partition: str, started: float) -> DayResult:
    """A past snapshot that already exists: reported as it was taken, not read again."""
    read = read_from_metadata(store.file_metadata(raw_key(de).path, partition)) or {}
    metadata = _file_metadata(store, de, partition, raw_fields(store, de, partition))
    rows = int(metadata["dagster/partition_row_count"])  # type: ignore[call-overload]
    count = int(read["count"]) if "count" in read else -1  # type: ignore[call-overload]  # -1: never recorded
    return DayResult(partition, checks=[_count_check(rows, count)], metadata={
        **metadata, "snapshot": f"kept: taken at {read.get('read_at', '(not recorded)')}",
        "sfmc_reported_count": count, "duration_s": round(time.monotonic() - started, 3)})


def raw_fields(store: ParquetLake, de: DataExtensionConfig, partition: str) -> tuple[FieldSpec, ...]:
    """The fields a raw partition was read with, as Marketing Cloud described them then."""
    path = raw_key(de).path
    found = fields_from_metadata(store.file_metadata(path, partition))
    return found or de.fields or fields_of(store.scan(path, partition).collect_schema())

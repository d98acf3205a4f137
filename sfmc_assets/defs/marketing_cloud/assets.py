"""The raw layer: each configured data extension becomes `sfmc/raw/<name>`, partitioned by UTC day.

A partition is exactly the rows Marketing Cloud holds for that day of the delta column, typed, with the
source's own column names, written to the lake in one piece (a rerun replaces it). Nothing is renamed or
judged here; that is the clean layer's job, so a raw partition can always be compared with the source.
"""

import time
from collections.abc import Iterator

import dagster as dg
import polars as pl

from sfmc_assets.defs.partitions import daily_partitions, partitioned_check
from sfmc_assets.defs.ranges import DayResult, report
from sfmc_assets.lib.config import DataExtensionConfig, ProjectConfig
from sfmc_assets.lib.extract import Window, extract_window
from sfmc_assets.lib.lake import ParquetLake
from sfmc_assets.lib.marketing_cloud import (
    AuthenticationError,
    DataExtensionNotFoundError,
    MarketingCloudClient,
    MarketingCloudError,
    SchemaDriftError,
)
from sfmc_assets.lib.marketing_cloud.types import PARSE_ERRORS, frame_schema
from sfmc_assets.lib.metadata import PII_ROLES, preview, table_schema
from sfmc_assets.resources import LakeResource, MarketingCloudResource

RAW_GROUP = "sfmc_raw"
SOURCE_COUNT_CHECK = "matches_source_count"
#: Concurrency pool shared by every step that calls Marketing Cloud (limit set on the instance).
SFMC_POOL = "sfmc_api"


def raw_key(de: DataExtensionConfig) -> dg.AssetKey:
    return dg.AssetKey(["sfmc", "raw", de.name])


def _column_descriptions(de: DataExtensionConfig) -> dict[str, str]:
    by_column = {col.lower(): role for role, col in de.columns.items()}
    out = {PARSE_ERRORS: "Values that did not parse as their Marketing Cloud type (null when the row is clean)."}
    for f in de.fields or ():
        role = by_column.get(f.name.lower())
        where = f"maps to `{role}`: {de.kind_def.role(role).description}" if role else "not mapped"
        out[f.name] = f"Marketing Cloud {f.type}{f'({f.length})' if f.length else ''}; {where}"
    return out


def build_raw_asset(de: DataExtensionConfig, config: ProjectConfig) -> dg.AssetsDefinition:
    """The extract asset of one data extension."""
    static_metadata: dict[str, object] = {
        "sfmc/external_key": de.external_key,
        "sfmc/delta_column": de.delta_column,
        "sfmc/primary_key": ", ".join(de.primary_key),
        "sfmc/server_utc_offset": config.source.utc_offset,
    }
    if de.fields is not None:
        static_metadata["dagster/column_schema"] = table_schema(frame_schema(de.fields), _column_descriptions(de))
    masked = [de.columns[r] for r in PII_ROLES if r in de.columns]
    partitions_def = daily_partitions(config.start_date_of(de))

    @dg.asset(
        key=raw_key(de),
        partitions_def=partitions_def,
        group_name=RAW_GROUP,
        check_specs=[partitioned_check(
            SOURCE_COUNT_CHECK, raw_key(de), partitions_def,
            description="Rows written for the day = the `count` Marketing Cloud reported for the day's filter.",
        )],
        kinds={"salesforce", "polars", "parquet"},
        owners=list(de.owners),
        tags={"layer": "raw", "domain": "marketing", "sfmc/kind": de.kind},
        description=(
            f"Rows of the Marketing Cloud data extension `{de.external_key}` whose `{de.delta_column}` falls "
            f"in the partition's UTC day, typed from the field metadata, source column names kept.\n\n"
            f"{de.description}"
        ),
        metadata=static_metadata,
        pool=SFMC_POOL,
        backfill_policy=dg.BackfillPolicy.single_run(),
        code_version="1",
    )
    def _raw(
        context: dg.AssetExecutionContext, marketing_cloud: MarketingCloudResource, lake: LakeResource
    ) -> Iterator[dg.MaterializeResult]:
        client = marketing_cloud.get_client(context.log)
        days: list[DayResult] = []
        for partition in context.partition_keys:
            day, fatal = _extract_day(partition, client, marketing_cloud, lake.lake(), de, config, masked)
            days.append(day)
            if fatal:
                # Wrong credentials, an unknown key or drift fail every day the same way: stop asking.
                days += [DayResult(p, failure=day.failure) for p in context.partition_keys[len(days):]]
                break
        yield from report(context, raw_key(de), days)

    return _raw


def _extract_day(
    partition: str,
    client: MarketingCloudClient,
    marketing_cloud: MarketingCloudResource,
    store: ParquetLake,
    de: DataExtensionConfig,
    config: ProjectConfig,
    masked: list[str],
) -> tuple[DayResult, bool]:
    """Extract one UTC day into its partition file.

    A failure is returned (named, with whether it is fatal for every other day too), not raised, so a
    ranged run reports the days that did succeed.
    """
    window = Window.day(partition)
    key_path = raw_key(de).path
    started = time.monotonic()
    try:
        result = extract_window(
            client, de, window,
            lambda schema: store.writer(key_path, partition, schema),
            utc_offset=config.source.offset,
            page_size=marketing_cloud.page_size,
            concurrency=marketing_cloud.max_concurrency,
        )
    except MarketingCloudError as exc:
        exc.with_context(data_extension=de.external_key)
        failure = (f"Extracting {de.name} (data extension {de.external_key}) for partition {partition} "
                   f"(window {window}) failed: {exc}")
        fatal = isinstance(exc, (AuthenticationError, DataExtensionNotFoundError, SchemaDriftError))
        return DayResult(partition, failure=failure), fatal
    scan = store.scan(key_path, partition)
    parse_failures = scan.filter(pl.col(PARSE_ERRORS).is_not_null()).select(pl.len()).collect().item()
    head = scan.head(5).collect()
    check = dg.AssetCheckResult(
        check_name=SOURCE_COUNT_CHECK, passed=result.rows == result.count,
        metadata={"sfmc_reported_count": result.count, "rows_extracted": result.rows},
        description=f"{result.rows} rows extracted, Marketing Cloud reported {result.count}",
    )
    return DayResult(partition, checks=[check], metadata={
        "dagster/partition_row_count": result.rows,
        "dagster/column_schema": table_schema(head.schema, _column_descriptions(de)),
        "dagster/uri": str(store.path(key_path, partition)),
        "preview": preview(head, masked),
        "window_start_utc": window.start.isoformat(),
        "window_end_utc": window.end.isoformat(),
        "sfmc_filter": result.filter,
        "sfmc_reported_count": result.count,
        "pages": result.pages,
        "api_calls": result.api_calls,
        "retries": result.retries,
        "read_attempts": result.attempts,
        "rows_with_parse_errors": parse_failures,
        "duration_s": round(time.monotonic() - started, 3),
    }), False

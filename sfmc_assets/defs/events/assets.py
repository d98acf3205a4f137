"""Tracking events: `sfmc/raw/events/<type>` -> `sfmc/clean/events/<type>` -> `aep/events/<type>`.

One chain per configured type (sent, open, click, bounce, unsubscribe), partitioned by the UTC day of
`EventDate`, with the guarantees of the data extension chains:

- raw: the day's objects as Marketing Cloud's SOAP `Retrieve` returned them (`lib/events.py`), typed, written
  in one piece only after a complete read (a rerun replaces the day); `matches_source_count` compares the
  rows written with the objects Marketing Cloud returned;
- clean: clean names, one row per natural key (a tracking record served twice is removed), gated by the
  blocking pandera contract (types, the key present, `EventType` one of the object's, the event inside its
  day, values that parsed); `reconciles_with_raw`;
- publish: the day's clean events as ExperienceEvents with XDM's `directMarketing.*` event types, one batch
  per type and day that replaces the previous one; `reconciles_with_clean`.
"""

import time
import warnings
from collections.abc import Iterator

import dagster as dg
import polars as pl
from dagster_pandera import pandera_schema_to_dagster_type

from sfmc_assets.defs.clean.assets import (
    CLEAN_GROUP,
    CONTRACT_CHECK,
    RECONCILE_CHECK,
    ChainPaths,
    clean_and_gate,
    reconciliation,
)
from sfmc_assets.defs.marketing_cloud.assets import RAW_GROUP, SFMC_POOL, SOURCE_COUNT_CHECK
from sfmc_assets.defs.metadata import preview, table_schema
from sfmc_assets.defs.partitions import daily_partitions, partitioned_check, schedule_tags
from sfmc_assets.defs.ranges import DayResult, report
from sfmc_assets.lib.config import DataExtensionConfig, ProjectConfig
from sfmc_assets.lib.events import EventType, as_data_extension, extract_events
from sfmc_assets.lib.extract import Window
from sfmc_assets.lib.lake import ParquetLake, PartitionWriter
from sfmc_assets.lib.marketing_cloud import AuthenticationError, MarketingCloudError
from sfmc_assets.lib.marketing_cloud.soap import RetrieveError, SoapFaultError, SoapReader
from sfmc_assets.lib.marketing_cloud.types import PARSE_ERRORS, frame_schema
from sfmc_assets.lib.privacy.policy import LakePolicy
from sfmc_assets.lib.schemas import contract
from sfmc_assets.lib.transforms import CleanPlan
from sfmc_assets.lib.validation import GateSummary
from sfmc_assets.resources import LakeResource, MarketingCloudResource

#: Subscriber keys are often e-mail addresses, and bounce reasons quote them: masked in previews.
MASKED = ("SubscriberKey", "SMTPReason", "contact_key", "smtp_reason")


def raw_key(event: EventType) -> dg.AssetKey:
    return dg.AssetKey(["sfmc", "raw", "events", event.name])


def clean_key(event: EventType) -> dg.AssetKey:
    return dg.AssetKey(["sfmc", "clean", "events", event.name])


def quarantine_key(event: EventType) -> list[str]:
    return ["sfmc", "quarantine", "events", event.name]


def partitions(config: ProjectConfig) -> dg.DailyPartitionsDefinition:
    settings = config.tracking_events
    return daily_partitions((settings.start_date if settings else None) or config.start_date)


def common(config: ProjectConfig, layer: str) -> dict[str, object]:
    """What every event asset shares: UTC days, single-run backfills, owners, and the tags the data extension
    assets of the same layer carry (the UI filters on `layer`, the freshness policy reads the schedule)."""
    return {"partitions_def": partitions(config), "backfill_policy": dg.BackfillPolicy.single_run(),
            "owners": list(config.tracking_events.owners if config.tracking_events else ()),
            "tags": {"layer": layer, "domain": "marketing", "sfmc/kind": "tracking_event",
                     **schedule_tags("daily", 1)}}


# -- raw ------------------------------------------------------------------------------------------------


def build_raw_asset(event: EventType, config: ProjectConfig) -> dg.AssetsDefinition:
    """The day's `<Object>` tracking records, read through SOAP."""
    partitions_def = partitions(config)

    @dg.asset(
        key=raw_key(event), group_name=RAW_GROUP, kinds={"salesforce", "polars", "parquet"}, pool=SFMC_POOL,
        check_specs=[partitioned_check(
            SOURCE_COUNT_CHECK, raw_key(event), partitions_def,
            description="Rows written for the day = the objects Marketing Cloud's Retrieve returned.")],
        description=(f"Marketing Cloud's `{event.object_type}` tracking records whose `EventDate` falls in the "
                     "partition's UTC day (a [start, end) window in server time), read with the SOAP API's "
                     "Retrieve and ContinueRequest, typed, property names kept."),
        metadata={"sfmc/object_type": event.object_type, "sfmc/properties": ", ".join(event.properties),
                  "sfmc/natural_key": ", ".join(event.key), "sfmc/server_utc_offset": config.source.utc_offset,
                  "dagster/column_schema": table_schema(frame_schema(event.fields))},
        **common(config, "raw"),  # type: ignore[arg-type]
    )
    def _raw(context: dg.AssetExecutionContext, marketing_cloud: MarketingCloudResource,
             lake: LakeResource) -> Iterator[dg.MaterializeResult]:
        reader = SoapReader(marketing_cloud.get_client(context.log), timeout=(10.0, marketing_cloud.timeout_s),
                            utc_offset=config.source.offset)
        days: list[DayResult] = []
        try:
            for partition in context.partition_keys:
                day, fatal = _extract_day(partition, event, reader, lake.lake(), as_data_extension(event, config))
                days.append(day)
                if fatal:  # credentials, permissions, a wrong request: every day fails the same way
                    days += [DayResult(p, failure=f"not read, as {partition} failed in a way no retry can pass: "
                                       f"{day.failure}") for p in context.partition_keys[len(days):]]
                    break
        finally:
            reader.close()
        yield from report(context, raw_key(event), days)

    return _raw


def _extract_day(partition: str, event: EventType, reader: SoapReader, store: ParquetLake,
                 de: DataExtensionConfig) -> tuple[DayResult, bool]:
    window = Window.day(partition)
    policy = LakePolicy.load(de, store)  # erased contacts' events never reach the lake
    try:
        result = extract_events(reader, event, window,
                                lambda schema: store.writer(raw_key(event).path, partition, schema),
                                suppress=lambda page: policy.prepare(page, event.fields))
    except MarketingCloudError as exc:
        fatal = isinstance(exc, (AuthenticationError, RetrieveError, SoapFaultError))
        return DayResult(partition, failure=f"Reading {event.object_type} tracking events for partition "
                         f"{partition} (window {window}) failed: {exc}"), fatal
    scan = store.scan(raw_key(event).path, partition)
    head = scan.head(5).collect()
    left_out = f" + {result.suppressed} of erased contacts left out" if result.suppressed else ""
    check = dg.AssetCheckResult(
        check_name=SOURCE_COUNT_CHECK, passed=result.rows + result.suppressed == result.objects,
        metadata={"objects_returned": result.objects, "rows_written": result.rows,
                  "rows_suppressed": result.suppressed},
        description=f"{result.rows} rows written{left_out}, Marketing Cloud returned {result.objects} objects")
    return DayResult(partition, checks=[check], metadata={
        "dagster/partition_row_count": result.rows,
        "dagster/uri": str(store.path(raw_key(event).path, partition)),
        "preview": preview(head, MASKED),
        "rows_with_parse_errors": scan.filter(pl.col(PARSE_ERRORS).is_not_null()).select(pl.len()).collect().item(),
        "window_start_utc": window.start.isoformat(), "window_end_utc": window.end.isoformat(),
        "sfmc_filter": result.filter, "sfmc_objects_returned": result.objects, "pages": result.pages,
        "api_calls": result.api_calls, "retries": result.retries, "token_replays": result.token_replays,
        "read_attempts": result.attempts, "duration_s": round(result.duration_s, 3),
    }), False


# -- clean ----------------------------------------------------------------------------------------------


def build_clean_asset(event: EventType, config: ProjectConfig) -> dg.AssetsDefinition:
    """The day's events, de-duplicated on their natural key and gated."""
    de = as_data_extension(event, config)
    partitions_def = partitions(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # pandera_schema_to_dagster_type: Beta, used on purpose
        columns = pandera_schema_to_dagster_type(contract(de, event.fields)).metadata["schema"].schema

    @dg.asset(
        key=clean_key(event), deps=[raw_key(event)], group_name=CLEAN_GROUP, kinds={"polars", "pandera", "parquet"},
        check_specs=[
            partitioned_check(CONTRACT_CHECK, clean_key(event), partitions_def, blocking=True, description=(
                "pandera contract: types, the natural key present and unique, `event_type` one of "
                f"{', '.join(event.event_types)}, the event inside the partition's day, values that parse. "
                f"Blocks the day when more than {de.quarantine_tolerance:.0%} of its events fail.")),
            partitioned_check(RECONCILE_CHECK, clean_key(event), partitions_def,
                              description="Raw rows = clean rows + quarantined rows + removed duplicates."),
        ],
        description=(f"`{event.object_type}` events with clean column names, one row per natural key "
                     f"({', '.join(de.clean_name(c) for c in event.key)}), gated by the blocking "
                     f"`{CONTRACT_CHECK}` check."),
        metadata={"quarantine_tolerance": de.quarantine_tolerance, "sfmc/natural_key": ", ".join(event.key),
                  "dagster/column_schema": columns},
        **common(config, "clean"),  # type: ignore[arg-type]
    )
    def _clean(context: dg.AssetExecutionContext, lake: LakeResource) -> Iterator[dg.MaterializeResult]:
        days = [_clean_day(p, event, de, lake.lake()) for p in context.partition_keys]
        yield from report(context, clean_key(event), days)

    return _clean


def _gate(store: ParquetLake, event: EventType, de: DataExtensionConfig,
          partition: str) -> tuple[CleanPlan, GateSummary, PartitionWriter]:
    """Clean and gate one day batch by batch: (the plan, gate summary, uncommitted writer)."""
    paths = ChainPaths(raw_key(event).path, clean_key(event).path, quarantine_key(event), event.fields)
    return clean_and_gate(store, de, partition, paths=paths)


def _gate_metadata(gate: GateSummary, tolerance: float) -> dict[str, object]:
    with pl.Config(tbl_formatting="ASCII_MARKDOWN", tbl_hide_column_data_types=True,
                   tbl_hide_dataframe_shape=True, tbl_rows=20, fmt_str_lengths=60):
        sample = str(gate.sample(20, MASKED)) if gate.failing_rows or gate.blocking_schema_errors else "_(none)_"
    return {"rows_checked": gate.rows_checked, "failing_rows": gate.failing_rows,
            "failures_by_rule": dg.MetadataValue.json(gate.failures_by_rule()),
            "failure_sample": dg.MetadataValue.md(sample), "quarantine_tolerance": tolerance,
            "schema_errors_block": gate.blocking_schema_errors}


def _clean_day(partition: str, event: EventType, de: DataExtensionConfig, store: ParquetLake) -> DayResult:
    started = time.monotonic()
    raw_rows = store.scan(raw_key(event).path, partition).select(pl.len()).collect().item()
    plan, gate, valid = _gate(store, event, de, partition)
    gate_md = _gate_metadata(gate, de.quarantine_tolerance)
    if not gate.within(de.quarantine_tolerance):
        valid.abort()
        rules = ", ".join(f"{rule} ({n})" for rule, n in list(gate.failures_by_rule().items())[:5])
        return DayResult(partition, checks=[dg.AssetCheckResult(
            check_name=CONTRACT_CHECK, passed=False, metadata=gate_md,
            description=f"{gate.failing_rows} of {gate.rows_checked} events fail: {rules}")], failure=(
            f"{event.object_type} events, partition {partition}: the {CONTRACT_CHECK} gate failed "
            f"({gate.failing_rows} of {gate.rows_checked} events): {rules}. Nothing was written; downstream "
            "assets do not run for this partition."))
    path = valid.commit()
    clean_rows = gate.rows_checked - gate.failing_rows
    checks = [
        dg.AssetCheckResult(check_name=CONTRACT_CHECK, passed=True, metadata=gate_md,
                            description=f"{clean_rows} events pass; {gate.failing_rows} quarantined"),
        reconciliation(raw_rows, gate, plan),
    ]
    head = store.scan(clean_key(event).path, partition).head(5).collect()
    return DayResult(partition, checks=checks, metadata={
        "dagster/partition_row_count": clean_rows, "dagster/uri": str(path),
        "dagster/column_schema": table_schema(head.schema), "preview": preview(head, MASKED),
        "rows_in": raw_rows, "duplicates_removed": plan.removed, "rows_quarantined": gate.failing_rows,
        "rows_suppressed": plan.suppressed,
        "duration_s": round(time.monotonic() - started, 3)})

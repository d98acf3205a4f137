"""The clean layer: `sfmc/clean/<name>`, clean column names and types, gated by a blocking pandera contract.

The contract is derived per partition from what Marketing Cloud allowed for the rows read (the raw
partition carries the fields as described at read time) plus the configuration's rules and `kind`
overlay (`lib/schemas.py`).

Validate, then write: the contract runs on the partition just produced, and when it fails the check
is recorded, nothing is written and the step fails, so nothing downstream of it runs (in a single
materialisation and in every run of a backfill). With a quarantine tolerance, failing rows go to the
quarantine table with their reasons and the valid rows go on.

The day streams through in batches (`CLEAN_BATCH_ROWS`): each batch is cleaned, gated and appended to a
temporary partition file, which becomes the partition only once the whole day has passed the gate.
"""

import dataclasses
import datetime as dt
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
import polars as pl
from dagster_pandera import pandera_schema_to_dagster_type

from sfmc_assets.defs.marketing_cloud.assets import raw_fields, raw_key
from sfmc_assets.defs.metadata import preview
from sfmc_assets.defs.partitions import frequency_tags, partitioned_check, partitions_of
from sfmc_assets.defs.ranges import DayResult, report
from sfmc_assets.lib.config import DataExtensionConfig, ProjectConfig
from sfmc_assets.lib.contact_state import ContactState, contact_state
from sfmc_assets.lib.extract import Window
from sfmc_assets.lib.lake import ParquetLake, PartitionWriter
from sfmc_assets.lib.marketing_cloud.fields import FieldSpec
from sfmc_assets.lib.personal import personal_columns
from sfmc_assets.lib.privacy.policy import LakePolicy
from sfmc_assets.lib.schemas import contract
from sfmc_assets.lib.transforms import CLEAN_BATCH_ROWS, CleanPlan, batches, plan_clean
from sfmc_assets.lib.validation import REJECTION_REASONS, Gate, GateSummary, gate_batches, unique_keys
from sfmc_assets.resources import LakeResource

CLEAN_GROUP = "sfmc_clean"
CONTRACT_CHECK = "pandera_contract"
KNOWN_CONTACTS_CHECK = "known_contacts"
RECONCILE_CHECK = "reconciles_with_raw"


def clean_key(de: DataExtensionConfig) -> dg.AssetKey:
    return dg.AssetKey(["sfmc", "clean", de.name])


def quarantine_key(de: DataExtensionConfig) -> list[str]:
    return ["sfmc", "quarantine", de.name]


def _column_schema(de: DataExtensionConfig, fields: tuple[FieldSpec, ...]) -> dg.TableSchema:
    """Columns and rules of the contract, with their descriptions (catalog and each materialisation)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # pandera_schema_to_dagster_type: Beta, used on purpose
        return pandera_schema_to_dagster_type(contract(de, fields)).metadata["schema"].schema


def _gate_metadata(gate: GateSummary, tolerance: float, masked: list[str]) -> dict[str, object]:
    with pl.Config(tbl_formatting="ASCII_MARKDOWN", tbl_hide_column_data_types=True,
                   tbl_hide_dataframe_shape=True, tbl_rows=20, fmt_str_lengths=60):
        sample = str(gate.sample(20, masked)) if gate.failing_rows or gate.blocking_schema_errors else "_(none)_"
    return {
        "rows_checked": gate.rows_checked,
        "failing_rows": gate.failing_rows,
        "failure_cases": gate.failure_cases.height,
        "failures_by_rule": dg.MetadataValue.json(gate.failures_by_rule()),
        "failure_sample": dg.MetadataValue.md(sample),
        "quarantine_tolerance": tolerance,
        "schema_errors_block": gate.blocking_schema_errors,
    }


def _known_contacts_check(
    frame: pl.LazyFrame, contacts: DataExtensionConfig, state: ContactState, day: dt.date, key: dg.AssetKey
) -> dg.AssetCheckResult:
    """WARN when events name contacts that no contacts partition up to this day holds."""
    keys = state.contact_keys(day).to_frame()  # kept day by day, not re-read from all partitions
    unknown = frame.join(keys.lazy(), on="contact_key", how="anti").select(pl.col("contact_key").unique()) \
        .collect()["contact_key"]
    events = frame.select(pl.len()).collect().item()
    return dg.AssetCheckResult(
        asset_key=key, check_name=KNOWN_CONTACTS_CHECK, passed=unknown.len() == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{unknown.len()} contact key(s) not found in {contacts.name} up to this day",
        metadata={"unknown_contacts": unknown.len(), "events_checked": events,
                  "contacts_known": keys.height},
    )


def _contacts_for(de: DataExtensionConfig, config: ProjectConfig) -> DataExtensionConfig | None:
    """The contacts data extension that `de`'s events refer to (for `known_contacts`), if any."""
    if de.kind not in ("engagement", "activities"):
        return None
    return next((d for d in config.data_extensions if d.kind == "contacts"), None)


def _check_specs(de: DataExtensionConfig, config: ProjectConfig,
                 partitions_def: dg.PartitionsDefinition) -> list[dg.AssetCheckSpec]:
    key = clean_key(de)
    window = "delta value inside the partition's day, " if de.sync == "incremental" else ""
    specs = [
        partitioned_check(
            CONTRACT_CHECK, key, partitions_def, blocking=True,
            description="pandera contract derived from Marketing Cloud's field metadata and the configuration: "
            f"types, required values, text lengths, unique primary key, e-mail format, declared rules, {window}"
            "values that parse. Blocks the partition (nothing written, nothing downstream) when more than "
            f"{de.quarantine_tolerance:.0%} of rows fail.",
        ),
        partitioned_check(
            RECONCILE_CHECK, key, partitions_def,
            description="Rows of the raw partition = clean rows + quarantined rows + removed duplicates.",
        ),
    ]
    contacts = _contacts_for(de, config)
    if contacts is not None:
        specs.append(partitioned_check(
            KNOWN_CONTACTS_CHECK, key, partitions_def, blocking=False,
            description=f"Warns when events refer to contacts unknown to `{contacts.name}` (cross-table).",
        ))
    return specs


def _description(de: DataExtensionConfig) -> str:
    kind = de.kind_def
    overlay = (
        f" Kind `{kind.name}`: mapped columns carry their role names and canonical values, for the segment "
        "tables." if kind else ""
    )
    latest = f", the latest `{de.delta_column}` winning" if de.delta_column else ""
    snapshot = " Each partition is a full snapshot." if de.sync == "full" else ""
    return (
        f"`{de.name}` with clean column names (snake_case unless renamed) and Marketing Cloud's types, e-mails "
        f"trimmed and lower-cased, one row per primary key{latest}.{snapshot}{overlay} Gated by the blocking "
        f"`{CONTRACT_CHECK}` check."
    )


def build_clean_asset(de: DataExtensionConfig, config: ProjectConfig) -> dg.AssetsDefinition:
    key = clean_key(de)
    partitions_def = partitions_of(de, config)
    contacts = _contacts_for(de, config)
    static: dict[str, object] = {"quarantine_tolerance": de.quarantine_tolerance, "sfmc/sync": de.sync}
    if de.fields is not None:
        static["dagster/column_schema"] = _column_schema(de, de.fields)

    @dg.asset(
        key=key,
        deps=[raw_key(de)],
        partitions_def=partitions_def,
        group_name=CLEAN_GROUP,
        kinds={"polars", "pandera", "parquet"},
        owners=list(de.owners),
        tags={"layer": "clean", "domain": "marketing", "sfmc/kind": de.kind or "generic",
              **frequency_tags(de)},
        description=_description(de),
        metadata=static,
        check_specs=_check_specs(de, config, partitions_def),
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def _clean(context: dg.AssetExecutionContext, lake: LakeResource) -> Iterator[dg.MaterializeResult]:
        state = (contact_state(lake.lake(), contacts.name, clean_key(contacts).path, config.start_date_of(contacts))
                 if contacts is not None else None)
        days = [_clean_day(p, de, lake, contacts, state) for p in context.partition_keys]
        yield from report(context, key, days)

    return _clean


@dataclass(frozen=True)
class ChainPaths:
    """Where a chain's raw, clean and quarantine partitions are (tracking events have their own), and the
    fields its raw partitions were read with."""

    raw: list[str]
    clean: list[str]
    quarantine: list[str]
    fields: tuple[FieldSpec, ...]


def clean_and_gate(store: ParquetLake, de: DataExtensionConfig, partition: str,
                   batch_rows: int = CLEAN_BATCH_ROWS,
                   paths: ChainPaths | None = None) -> tuple[CleanPlan, GateSummary, PartitionWriter]:
    """Clean and gate one day batch by batch; returns the valid rows' writer, not yet committed.

    Failing rows are written to the quarantine partition (replaced, or removed when none fail) whatever
    the decision; the caller commits the valid rows only if the gate lets them through. `paths` default
    to the data extension's (`sfmc/raw/<name>` ...).
    """
    window = Window.day(partition)
    paths = paths or ChainPaths(raw_key(de).path, clean_key(de).path, quarantine_key(de),
                                raw_fields(store, de, partition))
    plan = plan_clean(store.scan(paths.raw, partition), de, as_of=window.end, fields=paths.fields)
    # Contacts erased since the raw partition was written do not come back (lib/privacy/suppression.py).
    frame, suppressed = LakePolicy.load(de, store).suppress_clean(plan.frame, plan.fields)
    plan = dataclasses.replace(plan, frame=frame, suppressed=suppressed)
    schema = contract(de, plan.fields, (window.start, window.end) if de.sync == "incremental" else None)
    gate = Gate(schema, {k: plan.conflicting_keys for k in unique_keys(schema)})
    frame_schema = plan.frame.collect_schema()
    valid = store.partition_writer(paths.clean, partition, frame_schema)
    quarantined = store.partition_writer(paths.quarantine, partition,
                                         pl.Schema({**frame_schema, REJECTION_REASONS: pl.String()}))
    try:
        summary = gate_batches(batches(plan.frame, batch_rows), gate, valid.write, quarantined.write)
    except BaseException:
        valid.abort()
        quarantined.abort()
        raise
    if summary.failing_rows:
        quarantined.commit()
    else:
        quarantined.abort()
        store.delete(paths.quarantine, partition)
    return plan, summary, valid


def _blocked(de: DataExtensionConfig, partition: str, gate: GateSummary, gate_md: dict[str, object]) -> DayResult:
    rules = ", ".join(f"{rule} ({n})" for rule, n in list(gate.failures_by_rule().items())[:5])
    return DayResult(
        partition,
        checks=[dg.AssetCheckResult(check_name=CONTRACT_CHECK, passed=False, metadata=gate_md,
                                    description=f"{gate.failing_rows} of {gate.rows_checked} rows fail: {rules}")],
        failure=(
            f"Data extension {de.external_key}, partition {partition}: the {CONTRACT_CHECK} gate failed "
            f"({gate.failing_rows} of {gate.rows_checked} rows; tolerance {de.quarantine_tolerance:.0%}"
            f"{'; columns or types are wrong' if gate.blocking_schema_errors else ''}): {rules}. "
            "Nothing was written; downstream assets do not run for this partition."
        ),
    )


def reconciliation(raw_rows: int, gate: GateSummary, plan: CleanPlan) -> dg.AssetCheckResult:
    """raw = clean + quarantined + duplicates removed + rows of erased contacts left out."""
    clean_rows = gate.rows_checked - gate.failing_rows
    removed, suppressed = plan.removed, plan.suppressed
    accounted = clean_rows + gate.failing_rows + removed + suppressed
    erased = f" + {suppressed} of erased contacts" if suppressed else ""
    return dg.AssetCheckResult(
        check_name=RECONCILE_CHECK, passed=accounted == raw_rows,
        metadata={"raw_rows": raw_rows, "clean_rows": clean_rows, "quarantined": gate.failing_rows,
                  "duplicates_removed": removed, "rows_suppressed": suppressed,
                  "unaccounted": raw_rows - accounted},
        description=f"{raw_rows} raw = {clean_rows} clean + {gate.failing_rows} quarantined + "
                    f"{removed} duplicates{erased}" if accounted == raw_rows
                    else f"{raw_rows - accounted} raw rows are unaccounted for",
    )


def _clean_day(
    partition: str,
    de: DataExtensionConfig,
    lake: LakeResource,
    contacts: DataExtensionConfig | None,
    state: ContactState | None,
) -> DayResult:
    """Clean and gate one day; write it only if the gate lets it through."""
    started = time.monotonic()
    key = clean_key(de)
    store = lake.lake()
    raw_rows = store.scan(raw_key(de).path, partition).select(pl.len()).collect().item()
    plan, gate, valid = clean_and_gate(store, de, partition)
    masked = personal_columns(de, plan.fields)
    gate_md = _gate_metadata(gate, de.quarantine_tolerance, masked)
    if gate.failing_rows:
        gate_md["quarantine_uri"] = str(store.path(quarantine_key(de), partition))
    if not gate.within(de.quarantine_tolerance):
        valid.abort()
        return _blocked(de, partition, gate, gate_md)
    path = valid.commit()
    clean_rows = gate.rows_checked - gate.failing_rows
    checks = [
        dg.AssetCheckResult(check_name=CONTRACT_CHECK, passed=True, metadata=gate_md,
                            description=f"{clean_rows} rows pass; {gate.failing_rows} quarantined"),
        reconciliation(raw_rows, gate, plan),
    ]
    written = store.scan(key.path, partition)
    if contacts is not None and state is not None:
        checks.append(_known_contacts_check(written, contacts, state, Window.day(partition).start.date(), key))
    head = written.head(5).collect()
    return DayResult(partition, checks=checks, metadata={
        "dagster/partition_row_count": clean_rows,
        "dagster/uri": str(path),
        "dagster/column_schema": _column_schema(de, plan.fields),
        "preview": preview(head, masked),
        "rows_in": gate.rows_checked + plan.removed + plan.suppressed,
        "duplicates_removed": plan.removed,
        "rows_suppressed": plan.suppressed,
        "rows_quarantined": gate.failing_rows,
        "duration_s": round(time.monotonic() - started, 3),
    })

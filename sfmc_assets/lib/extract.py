"""Extracting one partition of a data extension: schema check, paged read, consistent re-reads.

An incremental partition holds the rows whose delta column falls in its half-open UTC day `[start, end)`.
Marketing Cloud compares Date columns in server time, so the filter sent is that window shifted to the
account's fixed offset and written without a zone (server time); how the REST API reads a literal with a
`Z` is not documented, so none is sent. A `sync: full` partition holds every row (no filter).

The partition file carries the fields as Marketing Cloud described them at read time (types, lengths,
nullability, keys) in its Parquet metadata, so the clean step derives its contract from what the source
allowed for exactly these rows, without calling Marketing Cloud again.
"""

import datetime as dt
import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import polars as pl

from sfmc_assets.lib.canonical import MONEY, UTC_DATETIME
from sfmc_assets.lib.config import DataExtensionConfig
from sfmc_assets.lib.lake import PartitionWriter
from sfmc_assets.lib.marketing_cloud.client import MarketingCloudClient
from sfmc_assets.lib.marketing_cloud.errors import InconsistentReadError, SchemaDriftError
from sfmc_assets.lib.marketing_cloud.fields import FieldSpec
from sfmc_assets.lib.marketing_cloud.rowset import RowsetReader, discover_fields
from sfmc_assets.lib.marketing_cloud.types import frame_schema, polars_dtype
from sfmc_assets.lib.privacy.policy import LakePolicy
from sfmc_assets.lib.windows import Window

#: Parquet key-value metadata of a raw partition: its fields as Marketing Cloud described them, and the
#: read (`count` Marketing Cloud reported, `$filter` sent, when), as JSON.
FIELDS_METADATA = "sfmc_assets.fields"
READ_METADATA = "sfmc_assets.read"

_LITERAL = "%Y-%m-%dT%H:%M:%S"
#: Pages are handed to the partition writer this many rows at a time: one Parquet write of eight
#: 2,500-row pages costs about a quarter of the CPU of eight writes of one page (bench `extract`).
WRITE_BATCH_ROWS = 20_000


def window_filter(delta_column: str, window: Window, utc_offset: dt.timedelta) -> str:
    """`$filter` selecting `[start, end)` of the delta column, in the account's server time."""
    start = (window.start.astimezone(dt.timezone.utc) + utc_offset).strftime(_LITERAL)
    end = (window.end.astimezone(dt.timezone.utc) + utc_offset).strftime(_LITERAL)
    return f"{delta_column} gte '{start}' and {delta_column} lt '{end}'"


def _compatible(role_dtype: pl.DataType, spec: FieldSpec) -> bool:
    served = polars_dtype(spec)
    if role_dtype == MONEY:
        return spec.type in ("Decimal", "Number")
    if role_dtype == UTC_DATETIME:
        return spec.type == "Date"
    return served == role_dtype


@dataclass(frozen=True)
class FieldCheck:
    """What a read uses of the fields Marketing Cloud serves, and what it noticed."""

    fields: tuple[FieldSpec, ...]  # read and written, in this order, under these names
    added: tuple[str, ...] = ()  # served columns beyond the declared ones, read (`add_columns`)
    ignored: tuple[str, ...] = ()  # served columns beyond the declared ones, not read (`ignore`)
    unknown_types: tuple[str, ...] = ()  # `Name (Type)` of fields whose type is read as text

    def warnings(self) -> list[str]:
        out = [f"column {c} was added in Marketing Cloud and is read (on_schema_change: add_columns)"
               for c in self.added]
        out += [f"column {c} was added in Marketing Cloud and is not read (on_schema_change: ignore)"
                for c in self.ignored]
        out += [f"field {c} has a type this reader does not know: read as text" for c in self.unknown_types]
        return out


def _needed_problems(de: DataExtensionConfig, by_name: dict[str, FieldSpec]) -> list[str]:
    """Columns the configuration relies on (roles, key, delta) that are missing or of the wrong type."""
    problems: list[str] = []
    kind = de.kind_def
    for role_name, column in de.columns.items():
        spec = by_name.get(column.lower())
        if spec is None:
            problems.append(f"column {column!r} (mapped to {role_name}) was removed")
        elif kind is not None and not _compatible(kind.role(role_name).dtype, spec):
            problems.append(f"column {column!r} (mapped to {role_name}) is {spec.type}, which {role_name} cannot hold")
    needed = [*de.primary_key, *([de.delta_column] if de.delta_column else [])]
    problems += [f"column {c!r} (primary key or delta column) was removed" for c in needed
                 if c.lower() not in by_name and c not in de.columns.values()]
    if de.delta_column and (spec := by_name.get(de.delta_column.lower())) and spec.type != "Date":
        problems.append(f"delta column {de.delta_column!r} is {spec.type}, not Date")
    return problems


def check_fields(de: DataExtensionConfig, served: tuple[FieldSpec, ...]) -> FieldCheck:
    """The fields to read, or `SchemaDriftError` naming every column that was removed or retyped (and, with
    `on_schema_change: fail`, added).

    Names and types are compared with the configuration's `fields`; nullability, lengths and keys are
    Marketing Cloud's as served (they are what the source allows today). Without `fields`, the served
    fields are read as they are, but every column the configuration relies on must exist.
    """
    by_name = {f.name.lower(): f for f in served}
    problems = _needed_problems(de, by_name)
    unknown = tuple(f"{f.name!r} ({f.type})" for f in served if not f.known_type)
    if de.fields is None:
        if problems:
            raise SchemaDriftError("schema drift: " + "; ".join(dict.fromkeys(problems)), data_extension=de.external_key)
        return FieldCheck(served, unknown_types=unknown)
    expected = {f.name.lower(): f for f in de.fields}
    added = tuple(f"{f.name!r} ({f.type})" for f in served if f.name.lower() not in expected)
    problems += [f"column {f.name!r} was removed" for n, f in expected.items() if n not in by_name]
    problems += [f"column {f.name!r} changed type from {f.type} to {by_name[n].type}"
                 for n, f in expected.items() if n in by_name and by_name[n].type != f.type]
    if de.on_schema_change == "fail":
        problems += [f"column {c} was added (on_schema_change: fail)" for c in added]
    if problems:
        raise SchemaDriftError("schema drift: " + "; ".join(dict.fromkeys(problems)), data_extension=de.external_key)
    # The configured names (and order), Marketing Cloud's current description of each.
    fields = tuple(by_name[f.name.lower()].model_copy(update={"name": f.name}) for f in de.fields)
    if de.on_schema_change == "add_columns":
        fields += tuple(f for f in served if f.name.lower() not in expected)
        return FieldCheck(fields, added=added, unknown_types=unknown)
    return FieldCheck(fields, ignored=added, unknown_types=unknown)


def read_metadata(fields: tuple[FieldSpec, ...], count: int, flt: str | None) -> dict[str, str]:
    """The Parquet metadata that makes a raw partition self-describing."""
    read = {"count": count, "filter": flt, "read_at": dt.datetime.now(dt.timezone.utc).isoformat()}
    return {FIELDS_METADATA: json.dumps([f.model_dump() for f in fields]), READ_METADATA: json.dumps(read)}


def fields_from_metadata(metadata: dict[str, str]) -> tuple[FieldSpec, ...] | None:
    raw = metadata.get(FIELDS_METADATA)
    return tuple(FieldSpec(**f) for f in json.loads(raw)) if raw else None


def read_from_metadata(metadata: dict[str, str]) -> dict[str, object] | None:
    """What the read that wrote a raw partition recorded (count, filter, read_at), if it recorded it."""
    raw = metadata.get(READ_METADATA)
    return json.loads(raw) if raw else None


@dataclass
class ExtractResult:
    """What an extraction did, for materialisation metadata and reconciliation."""

    rows: int
    count: int
    pages: int
    attempts: int
    api_calls: int
    retries: int
    duration_s: float
    fields: tuple[FieldSpec, ...]
    filter: str | None
    schema: FieldCheck
    suppressed: int = 0  # rows of erased contacts dropped (`privacy`: counted by Marketing Cloud, not written)


#: Opens the partition's writer for a typed schema (`ParquetLake.writer`).
OpenWriter = Callable[[pl.Schema], AbstractContextManager[PartitionWriter]]


def read_filter(de: DataExtensionConfig, window: Window, utc_offset: dt.timedelta) -> str | None:
    """The `$filter` of one partition: its UTC day of the delta column, or none for a full snapshot."""
    return window_filter(de.delta_column, window, utc_offset) if de.delta_column else None


def extract_window(
    client: MarketingCloudClient,
    de: DataExtensionConfig,
    window: Window,
    open_writer: OpenWriter,
    *,
    utc_offset: dt.timedelta,
    page_size: int = 2500,
    concurrency: int = 4,
    consistency_attempts: int = 3,
    policy: LakePolicy | None = None,
) -> ExtractResult:
    """Read one partition's rows into a partition writer; the partition is replaced only on success.

    `policy` (the data extension's `privacy:`) decides what is stored: with `keep_unmapped: false` only
    the mapped columns are even asked for (`$fields`), erased contacts are dropped, hashed columns hashed.
    """
    started = time.monotonic()
    calls_before, retries_before = client.counters["api_calls"], client.counters["retries"]
    checked = _checked_fields(client, de)
    policy = policy or LakePolicy(de, None)
    fields, stored, select = _columns(checked, policy)
    flt = read_filter(de, window, utc_offset)
    order = ",".join(f"{c} asc" for c in (de.key_columns(fields) or [f.name for f in fields]))
    last_error: InconsistentReadError | None = None
    for attempt in range(1, consistency_attempts + 1):
        reader = RowsetReader(client, de.external_key, fields, filter=flt, order_by=order, select=select,
                              page_size=page_size,
                              concurrency=concurrency, utc_offset_hours=utc_offset.total_seconds() / 3600)
        try:
            with open_writer(frame_schema(stored)) as writer:
                suppressed = _copy_pages(reader, writer, lambda page: policy.prepare(page, fields))
                writer.metadata.update(read_metadata(stored, reader.stats.count, flt))
        except InconsistentReadError as exc:
            last_error = exc
            client.log.warning("%s: %s; reading the partition again (attempt %d of %d)",
                               de.external_key, exc.reason, attempt + 1, consistency_attempts)
            continue
        return ExtractResult(
            rows=writer.rows, count=reader.stats.count, pages=reader.stats.pages, attempts=attempt,
            api_calls=client.counters["api_calls"] - calls_before,
            retries=client.counters["retries"] - retries_before,
            duration_s=time.monotonic() - started, fields=stored, filter=flt, schema=checked,
            suppressed=suppressed,
        )
    assert last_error is not None
    raise InconsistentReadError(
        f"no consistent read after {consistency_attempts} attempts: {last_error.reason}",
        data_extension=de.external_key, request=f"rowset $filter={flt}" if flt else "rowset (all rows)",
    )


def _checked_fields(client: MarketingCloudClient, de: DataExtensionConfig) -> FieldCheck:
    """Marketing Cloud's fields for `de`, checked against the configuration (drift names the data extension)."""
    try:
        return check_fields(de, discover_fields(client, de.external_key))
    except SchemaDriftError as exc:
        raise exc.with_context(data_extension=de.external_key) from None


def _columns(checked: FieldCheck, policy: LakePolicy) -> tuple[tuple[FieldSpec, ...], tuple[FieldSpec, ...],
                                                                list[str] | None]:
    """(fields read, as served; fields stored; the `$fields` to ask for, None for all).

    With `on_schema_change: ignore` or `keep_unmapped: false`, only the kept columns are asked for."""
    stored = policy.fields(checked.fields)
    kept = {f.name for f in stored}
    fields = tuple(f for f in checked.fields if f.name in kept)
    select = [f.name for f in fields] if checked.ignored or len(fields) < len(checked.fields) else None
    return fields, stored, select


def _copy_pages(reader: RowsetReader, writer: PartitionWriter,
                prepare: Callable[[pl.DataFrame], tuple[pl.DataFrame, int]]) -> int:
    """Typed pages to the writer, WRITE_BATCH_ROWS at a time, each batch `prepare`d; returns the rows
    `prepare` dropped."""
    batch: list[pl.DataFrame] = []
    rows = dropped = 0

    def flush() -> None:
        nonlocal dropped
        frame, n = prepare(pl.concat(batch))
        writer.write(frame)
        dropped += n

    for page in reader.pages():
        batch.append(page)
        rows += page.height
        if rows >= WRITE_BATCH_ROWS:
            flush()
            batch, rows = [], 0
    if batch:
        flush()
    return dropped

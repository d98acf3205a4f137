"""Extracting one data extension window: drift check, filtered paged read, consistent re-reads.

A daily partition holds the rows whose delta column falls in its half-open UTC day `[start, end)`.
Marketing Cloud compares Date columns in server time, so the filter sent is that window shifted to the
account's fixed offset and written without a zone (server time); a literal's `Z` is honoured by the
sandbox but its interpretation by the real REST API is UNCONFIRMED (reference §2.5), so it is not used.
"""

import datetime as dt
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import polars as pl

from sfmc_assets.lib.canonical import MONEY, UTC_DATETIME
from sfmc_assets.lib.config import DataExtensionConfig, FieldSpec
from sfmc_assets.lib.lake import PartitionWriter
from sfmc_assets.lib.marketing_cloud.client import MarketingCloudClient
from sfmc_assets.lib.marketing_cloud.errors import InconsistentReadError, SchemaDriftError
from sfmc_assets.lib.marketing_cloud.rowset import RowsetReader, discover_fields
from sfmc_assets.lib.marketing_cloud.types import frame_schema, polars_dtype

_LITERAL = "%Y-%m-%dT%H:%M:%S"
#: Pages are handed to the partition writer this many rows at a time: one Parquet write of eight
#: 2,500-row pages costs about a quarter of the CPU of eight writes of one page (bench `extract`).
WRITE_BATCH_ROWS = 20_000


@dataclass(frozen=True)
class Window:
    """A half-open UTC interval `[start, end)`."""

    start: dt.datetime
    end: dt.datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None or self.end <= self.start:
            raise ValueError(f"a window needs aware datetimes with start < end, got {self.start}..{self.end}")

    @classmethod
    def day(cls, partition_key: str) -> "Window":
        start = dt.datetime.fromisoformat(partition_key).replace(tzinfo=dt.timezone.utc)
        return cls(start, start + dt.timedelta(days=1))

    def __str__(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"


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


def check_fields(de: DataExtensionConfig, served: tuple[FieldSpec, ...]) -> tuple[FieldSpec, ...]:
    """The fields to read, or `SchemaDriftError` naming every column that was added, removed or retyped.

    With `fields` in the configuration, any difference is drift. Without it (discovery), the served
    fields are used as they are, but each mapped column must exist with a type its role accepts.
    """
    by_name = {f.name.lower(): f for f in served}
    problems: list[str] = []
    if de.fields is not None:
        expected = {f.name.lower(): f for f in de.fields}
        problems += [f"column {by_name[n].name!r} ({by_name[n].type}) was added" for n in by_name if n not in expected]
        problems += [f"column {expected[n].name!r} was removed" for n in expected if n not in by_name]
        problems += [
            f"column {expected[n].name!r} changed type from {expected[n].type} to {by_name[n].type}"
            for n in expected if n in by_name and by_name[n].type != expected[n].type
        ]
    kind = de.kind_def
    for role_name, column in de.columns.items():
        spec = by_name.get(column.lower())
        if spec is None:
            if de.fields is None:
                problems.append(f"column {column!r} (mapped to {role_name}) was removed")
        elif not _compatible(kind.role(role_name).dtype, spec) and de.fields is None:
            problems.append(f"column {column!r} (mapped to {role_name}) is {spec.type}, which {role_name} cannot hold")
    if problems:
        raise SchemaDriftError("schema drift: " + "; ".join(problems), data_extension=de.external_key)
    if de.fields is not None:
        # Keep the configured names/order; the served specs carry the same types (checked above).
        return tuple(de.fields)
    return served


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
    filter: str


def extract_window(
    client: MarketingCloudClient,
    de: DataExtensionConfig,
    window: Window,
    open_writer: Callable[[pl.Schema], AbstractContextManager[PartitionWriter]],
    *,
    utc_offset: dt.timedelta,
    page_size: int = 2500,
    concurrency: int = 4,
    consistency_attempts: int = 3,
) -> ExtractResult:
    """Read the window's rows into a partition writer; the partition is replaced only on success."""
    started = time.monotonic()
    calls_before, retries_before = client.counters["api_calls"], client.counters["retries"]
    try:
        fields = check_fields(de, discover_fields(client, de.external_key))
    except SchemaDriftError as exc:
        raise exc.with_context(data_extension=de.external_key) from None
    flt = window_filter(de.delta_column, window, utc_offset)
    last_error: InconsistentReadError | None = None
    for attempt in range(1, consistency_attempts + 1):
        reader = RowsetReader(client, de.external_key, fields, filter=flt, page_size=page_size,
                              concurrency=concurrency, utc_offset_hours=utc_offset.total_seconds() / 3600)
        try:
            with open_writer(frame_schema(fields)) as writer:
                batch: list[pl.DataFrame] = []
                rows = 0
                for page in reader.pages():
                    batch.append(page)
                    rows += page.height
                    if rows >= WRITE_BATCH_ROWS:
                        writer.write(pl.concat(batch))
                        batch, rows = [], 0
                if batch:
                    writer.write(pl.concat(batch))
        except InconsistentReadError as exc:
            last_error = exc
            client.log.warning("%s: %s; reading the window again (attempt %d of %d)",
                               de.external_key, exc.reason, attempt + 1, consistency_attempts)
            continue
        return ExtractResult(
            rows=writer.rows, count=reader.stats.count, pages=reader.stats.pages, attempts=attempt,
            api_calls=client.counters["api_calls"] - calls_before,
            retries=client.counters["retries"] - retries_before,
            duration_s=time.monotonic() - started, fields=fields, filter=flt,
        )
    assert last_error is not None
    raise InconsistentReadError(
        f"no consistent read after {consistency_attempts} attempts: {last_error.reason}",
        data_extension=de.external_key, request=f"rowset $filter={flt}",
    )

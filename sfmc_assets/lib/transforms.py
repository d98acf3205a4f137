"""Pure Polars transforms from a raw partition (source names) to the clean table.

No Dagster here: every function takes and returns frames, so the rules are tested on plain DataFrames.

The steps, in order:
1. `to_clean`: every source column under its clean name (its role if the data extension's `kind` maps it,
   its `rename`, else its snake_case), unmapped roles of the kind as typed nulls, source values mapped
   onto the roles' canonical enums. An unmapped value is kept as it came, so the quality gate fails
   naming it (`'VIP' is not one of new, repeat, loyal, inactive`), never silently dropped.
2. `normalise`: e-mail columns (the `email` role, EmailAddress fields) and the roles' text trimmed, blank
   strings to null, e-mails lower-cased. Other text is kept as Marketing Cloud holds it.
3. `deduplicate`: one row per primary key (every key column), the latest delta value winning; exact
   duplicates collapse. Rows that tie with different content are all kept, so the gate's unique-key rule
   reports the conflict.
4. `derive`: `partition_date` (the delta value's UTC day, or the snapshot's day), and what the segments
   need (days since last order for contacts, as of the end of the partition).

`plan_clean` keeps a partition lazy so it can be streamed in batches (memory bounded by the batch, not
the day): de-duplication first finds the keys that repeat with a streaming count of key hashes, then
de-duplicates only those keys' rows, and the plan drops the losing rows by their row number.
"""

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import polars as pl

from sfmc_assets.lib.config import DataExtensionConfig
from sfmc_assets.lib.marketing_cloud.fields import FieldSpec
from sfmc_assets.lib.marketing_cloud.types import PARSE_ERRORS

#: The UTC day (as a date) of the delta value, or of the snapshot: the partition a row belongs to.
PARTITION_DATE = "partition_date"


def _lookup(value: pl.Expr, mapping: dict[str, str], default: pl.Expr) -> pl.Expr:
    """`value.replace_strict(mapping, default=default)` as a when/then chain: polars 2.1 runs `replace`
    on the whole column in memory, breaking the stream; the mappings are a handful of values."""
    if not mapping:
        return default
    branches = iter(mapping.items())
    source, target = next(branches)
    chain = pl.when(value == source).then(pl.lit(target))
    for source, target in branches:
        chain = chain.when(value == source).then(pl.lit(target))
    return chain.otherwise(default)


def fields_of(raw_schema: pl.Schema) -> tuple[FieldSpec, ...]:
    """Fields inferred from a typed frame, for a raw partition written without its metadata."""
    def spec(name: str, dtype: pl.DataType) -> FieldSpec:
        if isinstance(dtype, pl.Decimal):
            return FieldSpec(name=name, type="Decimal", length=dtype.precision, scale=dtype.scale)
        kind = {pl.Int64: "Number", pl.Boolean: "Boolean"}.get(dtype.base_type(), "Text")  # type: ignore[call-overload]
        return FieldSpec(name=name, type="Date" if isinstance(dtype, pl.Datetime) else kind)
    return tuple(spec(n, d) for n, d in raw_schema.items() if n != PARSE_ERRORS)


def to_clean(raw: pl.LazyFrame, de: DataExtensionConfig, fields: Sequence[FieldSpec]) -> pl.LazyFrame:
    """Source columns under their clean names, roles typed, source values mapped onto canonical enums."""
    kind = de.kind_def
    names = de.clean_names(fields)
    available = {c.lower(): c for c in raw.collect_schema().names()}
    exprs: list[pl.Expr] = []
    for f in fields:
        column = pl.col(available.get(f.name.lower(), f.name))
        role = kind.role(names[f.name]) if kind is not None and de.role_of(f.name) else None
        if role is not None and role.enum is not None:
            lookup = {k.strip().lower(): v for k, v in de.values.get(role.name, {}).items()}
            text = column.cast(pl.String)
            normalised = text.str.strip_chars().str.to_lowercase()
            column = (
                pl.when(text.is_null() | (text.str.strip_chars() == "")).then(None)
                .otherwise(_lookup(normalised, lookup, default=text.str.strip_chars()))
            )
        if role is not None:
            column = column.cast(role.dtype)
        exprs.append(column.alias(names[f.name]))
    if kind is not None:
        exprs += [pl.lit(None, kind.role(r).dtype).alias(r) for r in de.role_defaults()]
    if PARSE_ERRORS in raw.collect_schema().names():
        exprs.append(pl.col(PARSE_ERRORS))
    else:
        exprs.append(pl.lit(None, pl.String).alias(PARSE_ERRORS))
    return raw.select(exprs)


def email_columns(de: DataExtensionConfig, fields: Sequence[FieldSpec]) -> list[str]:
    """Clean columns holding e-mail addresses: the `email` role and every EmailAddress field."""
    names = de.clean_names(fields)
    out = [names[f.name] for f in fields if f.type == "EmailAddress"]
    if "email" in names.values() and de.kind == "contacts":
        out.append("email")
    return list(dict.fromkeys(out))


def normalise(frame: pl.LazyFrame, de: DataExtensionConfig, fields: Sequence[FieldSpec]) -> pl.LazyFrame:
    """Trim e-mails and the roles' text, blank strings to null, lower-case e-mail addresses."""
    schema = frame.collect_schema()
    kind = de.kind_def
    roles = [r.name for r in kind.roles if r.dtype == pl.String and r.enum is None] if kind else []
    emails = email_columns(de, fields)
    strings = [c for c in dict.fromkeys([*roles, *emails]) if schema.get(c) == pl.String]
    out = frame.with_columns(
        pl.when(pl.col(c).str.strip_chars() == "").then(None).otherwise(pl.col(c).str.strip_chars()).alias(c)
        for c in strings
    )
    return out.with_columns(pl.col(c).str.to_lowercase() for c in emails if c in strings)


def key_columns(de: DataExtensionConfig, fields: Sequence[FieldSpec]) -> list[str]:
    """The primary key as clean columns (empty when the data extension has none)."""
    names = de.clean_names(fields)
    by_lower = {f.name.lower(): f.name for f in fields}
    return [names[by_lower[c.lower()]] for c in de.key_columns(fields) if c.lower() in by_lower]


def time_column(de: DataExtensionConfig) -> str | None:
    """The clean column of the delta value (None for full snapshots)."""
    return de.clean_name(de.delta_column) if de.delta_column else None


@dataclass(frozen=True)
class Deduplicated:
    frame: pl.DataFrame
    removed: int


@dataclass(frozen=True)
class CleanPlan:
    """One partition's clean rows as a lazy query, with what de-duplication decided up front."""

    frame: pl.LazyFrame  # the clean rows in raw order; stream it with `batches`
    removed: int  # rows dropped: superseded by a later delta value, or exact duplicates
    key: tuple[str, ...]  # the primary key's clean columns (empty: no key, nothing de-duplicated)
    conflicting_keys: pl.DataFrame  # keys the clean rows still hold more than once (ties, different content)
    fields: tuple[FieldSpec, ...]  # the raw partition's fields, as Marketing Cloud described them
    suppressed: int = 0  # rows of erased contacts left out (the suppression list, lib/privacy)


#: Rows per batch when a partition streams through clean -> gate -> write. Memory grows with the batch
#: (~+110 MB peak at 250k vs 100k rows); each batch costs pandera ~10 ms whatever its size (one small
#: query per rule), which at 100k rows was most of the validation time.
CLEAN_BATCH_ROWS = 250_000

#: Raw row number, so the rows de-duplication drops can be removed from the stream.
_ROW = "__raw_row"


def deduplicate(frame: pl.DataFrame, key: Sequence[str], time: str | None) -> pl.DataFrame:
    """Keep, per primary key, the rows with the latest delta value (exact duplicates collapse to one)."""
    content = [c for c in frame.columns if c != _ROW]
    if time is not None:
        latest = pl.col(time) == pl.col(time).max().over(key)
        frame = frame.filter(latest | pl.col(time).is_null() & pl.col(time).max().over(key).is_null())
    return frame.unique(subset=content, keep="first", maintain_order=True)


def _key_hash(key: Sequence[str]) -> pl.Expr:
    return pl.col(key[0]).hash() if len(key) == 1 else pl.struct(key).hash()


def _repeated_key_rows(rows: pl.LazyFrame, key: Sequence[str]) -> pl.DataFrame:
    """The rows whose key hash occurs more than once (all rows of repeated keys, in raw order).

    Only the keys' 64-bit hashes are held (8 bytes a row, sorted to find repeats: a streaming group-by
    or `is_duplicated` needs several times more); a hash collision only adds rows that `deduplicate`
    leaves alone, as it works on the exact key.
    """
    key_hash = _key_hash(key)
    hashes = rows.select(key_hash).collect(engine="streaming").to_series().sort()
    repeated = hashes.filter(hashes == hashes.shift(1)).unique()
    if repeated.is_empty():
        return rows.clear().collect()
    return rows.filter(key_hash.is_in(repeated.implode())).collect(engine="streaming").sort(_ROW)


def plan_clean(
    raw: pl.LazyFrame | pl.DataFrame,
    de: DataExtensionConfig,
    as_of: dt.datetime,
    fields: Sequence[FieldSpec] | None = None,
) -> CleanPlan:
    """The clean step for one partition, lazily: clean names, normalised, de-duplicated, derived.

    `fields` are the raw partition's fields as Marketing Cloud described them (default: the configured
    ones, else inferred from the frame's types). `as_of` is the end of the partition's UTC day.
    """
    lazy = raw.lazy() if isinstance(raw, pl.DataFrame) else raw
    fields = tuple(fields or de.fields or fields_of(lazy.collect_schema()))
    key, time = key_columns(de, fields), time_column(de)
    rows = normalise(to_clean(lazy, de, fields), de, fields).with_row_index(_ROW)
    if not key:
        return CleanPlan(derive(rows.drop(_ROW), de, as_of), 0, (), pl.DataFrame(), fields)
    candidates = _repeated_key_rows(rows, key)
    kept = deduplicate(candidates, key, time)
    dropped = candidates.join(kept.select(_ROW), on=_ROW, how="anti")[_ROW]
    conflicts = kept.filter(pl.len().over(key) > 1).select(key).unique(maintain_order=True)
    if not dropped.is_empty():
        rows = rows.filter(~pl.col(_ROW).is_in(dropped.implode()))
    return CleanPlan(derive(rows.drop(_ROW), de, as_of), dropped.len(), tuple(key), conflicts, fields)


def batches(frame: pl.LazyFrame, rows: int) -> Iterator[pl.DataFrame]:
    """Stream `frame` in batches of about `rows` rows; at least one (possibly empty) batch, so that a
    partition without rows is still checked against the contract's columns and types."""
    empty = True
    for batch in frame.collect_batches(chunk_size=rows):
        empty = False
        yield batch
    if empty:
        yield frame.clear().collect()


def derive(frame: pl.LazyFrame, de: DataExtensionConfig, as_of: dt.datetime) -> pl.LazyFrame:
    """Fields the segments need, computed as of `as_of` (the end of the partition's day)."""
    time = time_column(de)
    as_of_lit = pl.lit(as_of).dt.replace_time_zone("UTC") if as_of.tzinfo is None else pl.lit(as_of)
    day = (as_of.astimezone(dt.timezone.utc) - dt.timedelta(days=1)).date() if as_of.tzinfo else \
        (as_of - dt.timedelta(days=1)).date()
    out = frame.with_columns(
        (pl.col(time).dt.date() if time else pl.lit(day, pl.Date)).alias(PARTITION_DATE)
    )
    if de.kind == "contacts":
        out = out.with_columns(
            (as_of_lit - pl.col("last_order_at")).dt.total_days().cast(pl.Int64).alias("days_since_last_order")
        )
    return out


def clean(raw: pl.LazyFrame | pl.DataFrame, de: DataExtensionConfig, as_of: dt.datetime,
          fields: Sequence[FieldSpec] | None = None) -> Deduplicated:
    """The whole clean step for one partition, collected in memory (tests, small frames)."""
    plan = plan_clean(raw, de, as_of, fields)
    return Deduplicated(plan.frame.collect(), plan.removed)

"""Pure Polars transforms from a raw partition (source names) to the canonical model.

No Dagster here: every function takes and returns frames, so the rules are tested on plain DataFrames.

The steps, in order:
1. `to_canonical`: rename mapped source columns to their roles, add unmapped optional roles as typed
   nulls, map source values onto canonical enums. An unmapped value is kept as it came, so the quality
   gate fails naming it (`'VIP' is not one of new, repeat, loyal, inactive`), never silently dropped.
2. `normalise`: trim strings, lower-case e-mails, blank strings to null.
3. `deduplicate`: one row per primary key, the latest delta value winning. Rows that tie on the delta
   value with different content are all kept, so the unique-key rule of the gate reports the conflict.
4. `derive`: fields the segments need (e.g. days since last order, as of the end of the partition).
"""

import datetime as dt
from dataclasses import dataclass

import polars as pl

from sfmc_assets.lib.canonical import Kind
from sfmc_assets.lib.config import DataExtensionConfig
from sfmc_assets.lib.marketing_cloud.types import PARSE_ERRORS

#: The UTC day (as a date) of the delta value: the partition a row belongs to.
PARTITION_DATE = "partition_date"


def to_canonical(raw: pl.LazyFrame, de: DataExtensionConfig) -> pl.LazyFrame:
    """Source columns -> canonical roles, source values -> canonical enum values."""
    kind = de.kind_def
    available = {c.lower(): c for c in raw.collect_schema().names()}
    exprs: list[pl.Expr] = []
    for role in kind.roles:
        source = de.columns.get(role.name)
        if source is None:
            exprs.append(pl.lit(None, role.dtype).alias(role.name))
            continue
        column = pl.col(available.get(source.lower(), source))
        if role.enum is not None:
            lookup = {k.strip().lower(): v for k, v in de.values.get(role.name, {}).items()}
            text = column.cast(pl.String)
            normalised = text.str.strip_chars().str.to_lowercase()
            column = (
                pl.when(text.is_null() | (text.str.strip_chars() == "")).then(None)
                .otherwise(normalised.replace_strict(lookup, default=text.str.strip_chars()))
            )
        exprs.append(column.cast(role.dtype).alias(role.name))
    if PARSE_ERRORS in raw.collect_schema().names():
        exprs.append(pl.col(PARSE_ERRORS))
    else:
        exprs.append(pl.lit(None, pl.String).alias(PARSE_ERRORS))
    return raw.select(exprs)


def normalise(frame: pl.LazyFrame, kind: Kind) -> pl.LazyFrame:
    """Trim text, lower-case e-mail addresses, and turn blank strings into nulls."""
    strings = [r.name for r in kind.roles if r.dtype == pl.String and r.enum is None]
    out = frame.with_columns(
        pl.when(pl.col(c).str.strip_chars() == "").then(None).otherwise(pl.col(c).str.strip_chars()).alias(c)
        for c in strings
    )
    if "email" in strings:
        out = out.with_columns(pl.col("email").str.to_lowercase())
    return out


@dataclass(frozen=True)
class Deduplicated:
    frame: pl.DataFrame
    removed: int


def deduplicate(frame: pl.DataFrame, kind: Kind) -> Deduplicated:
    """Keep, per primary key, the rows with the latest delta value (exact duplicates collapse to one)."""
    key, time = kind.key_role, kind.time_role
    latest = pl.col(time) == pl.col(time).max().over(key)
    kept = frame.filter(latest | pl.col(time).is_null() & pl.col(time).max().over(key).is_null()).unique(
        maintain_order=True
    )
    return Deduplicated(kept, frame.height - kept.height)


def derive(frame: pl.LazyFrame, kind: Kind, as_of: dt.datetime) -> pl.LazyFrame:
    """Fields the segments need, computed as of `as_of` (the end of the partition's day)."""
    out = frame.with_columns(pl.col(kind.time_role).dt.date().alias(PARTITION_DATE))
    if kind.name == "contacts":
        as_of_lit = pl.lit(as_of).dt.replace_time_zone("UTC") if as_of.tzinfo is None else pl.lit(as_of)
        out = out.with_columns(
            (as_of_lit - pl.col("last_order_at")).dt.total_days().cast(pl.Int64).alias("days_since_last_order")
        )
    return out


def clean(raw: pl.LazyFrame | pl.DataFrame, de: DataExtensionConfig, as_of: dt.datetime) -> Deduplicated:
    """The whole clean step for one partition: canonical, normalised, de-duplicated, derived."""
    kind = de.kind_def
    lazy = raw.lazy() if isinstance(raw, pl.DataFrame) else raw
    canonical = normalise(to_canonical(lazy, de), kind).collect()
    deduped = deduplicate(canonical, kind)
    return Deduplicated(derive(deduped.frame.lazy(), kind, as_of).collect(), deduped.removed)

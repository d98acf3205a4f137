"""Marketing Cloud field types to Polars types, and the conversion of the API's strings.

The rowset API returns every value as a string (reference §2.4): `""` for NULL, `"True"`/`"False"`,
numbers in invariant culture, dates as `M/d/yyyy h:mm:ss AM` in server time (fixed UTC-6). Types come
from the field metadata: Text/EmailAddress/Phone/Locale -> String, Number -> Int64, Decimal(p,s) ->
Decimal(p,s), Boolean -> Boolean, Date -> Datetime in UTC.

A value that does not parse does not abort the read: it becomes null and is described in the row's
`_parse_errors` column, which the quality gate turns into a named failure (or a quarantined row).
"""

import datetime as dt
from collections.abc import Sequence

import polars as pl

from sfmc_assets.lib.config import FieldSpec

PARSE_ERRORS = "_parse_errors"
DATE_FORMAT = "%m/%d/%Y %I:%M:%S %p"
_TRUE = ("true", "1")
_FALSE = ("false", "0")
#: The UTC values a Python datetime (and so every pandera check) can hold. Polars parses years such as
#: -1 or 0, and 12/31/9999 after 6 PM server time is year 10000 in UTC: outside this range, pandera's
#: checks fail on the whole column and block the partition, so such values are parse errors instead.
_UTC_RANGE = (dt.datetime.min.replace(tzinfo=dt.timezone.utc), dt.datetime.max.replace(tzinfo=dt.timezone.utc))


def polars_dtype(spec: FieldSpec) -> pl.DataType:
    """The Polars type a field's values are converted to."""
    if spec.type == "Number":
        return pl.Int64()
    if spec.type == "Decimal":
        # SFMC's length is the total number of digits (max 29) and scale the digits after the point.
        return pl.Decimal(min(max(spec.length or 18, 1), 38), spec.scale or 0)
    if spec.type == "Boolean":
        return pl.Boolean()
    if spec.type == "Date":
        return pl.Datetime("us", "UTC")
    return pl.String()


def frame_schema(fields: Sequence[FieldSpec]) -> pl.Schema:
    """Schema of a typed page: one column per field, then `_parse_errors`."""
    return pl.Schema([(f.name, polars_dtype(f)) for f in fields] + [(PARSE_ERRORS, pl.String())])


def empty_frame(fields: Sequence[FieldSpec]) -> pl.DataFrame:
    return pl.DataFrame(schema=frame_schema(fields))


def _convert(spec: FieldSpec, utc_offset_hours: float) -> tuple[pl.Expr, pl.Expr]:
    """(typed value, error message or null) for one field."""
    raw = pl.col(spec.name)
    text = raw.str.strip_chars()
    blank = text.is_null() | (text == "")
    if spec.type == "Number":
        value = text.cast(pl.Int64, strict=False)
    elif spec.type == "Decimal":
        value = text.cast(polars_dtype(spec), strict=False)
    elif spec.type == "Boolean":
        lowered = text.str.to_lowercase()
        value = pl.when(lowered.is_in(_TRUE)).then(True).when(lowered.is_in(_FALSE)).then(False)
    elif spec.type == "Date":
        naive = text.str.strptime(pl.Datetime("us"), DATE_FORMAT, strict=False)
        # Server time is a fixed offset (no DST): UTC = server time - offset.
        utc = (naive - pl.duration(minutes=round(utc_offset_hours * 60))).dt.replace_time_zone("UTC")
        value = pl.when(utc.is_between(*_UTC_RANGE)).then(utc)
    else:
        return pl.when(raw == "").then(None).otherwise(raw).alias(spec.name), pl.lit(None, pl.String)
    value = pl.when(blank).then(None).otherwise(value).alias(spec.name)
    error = (
        pl.when(~blank & value.is_null())
        .then(pl.format("{}: '{}' is not a valid {}", pl.lit(spec.name), raw, pl.lit(spec.type)))
        .otherwise(None)
    )
    return value, error


def typed_frame(strings: pl.DataFrame, fields: Sequence[FieldSpec], utc_offset_hours: float) -> pl.DataFrame:
    """Convert a page of strings to typed columns plus `_parse_errors` (null when the row parsed cleanly)."""
    pairs = [_convert(f, utc_offset_hours) for f in fields]
    errors = pl.concat_str([e for _, e in pairs], separator="; ", ignore_nulls=True)
    return strings.select(
        *(v for v, _ in pairs),
        pl.when(errors == "").then(None).otherwise(errors).alias(PARSE_ERRORS),
    )

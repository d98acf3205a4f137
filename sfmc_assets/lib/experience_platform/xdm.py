"""Canonical clean frames -> XDM records, with the mapping kept as data (it lives in the YAML configuration).

A mapping names, per XDM dot path, the canonical column that fills it (`person.name.firstName:
first_name`), plus the parts XDM treats specially: `identityMap` (namespace -> identities), the record `_id`
(deterministic, so Profile drops a re-sent ExperienceEvent as a duplicate:
https://experienceleague.adobe.com/en/docs/experience-platform/xdm/classes/experienceevent),
`timestamp` and `eventType` for ExperienceEvents.

Parquet shape (what Platform and the local sandbox read):
- nested XDM objects are nested structs; `identityMap` is a Parquet MAP<string, list<struct<id, primary>>>
  (Polars has no map type, so the frame carries it as list<struct<key, value>>, Arrow's physical layout of
  a map, and `to_parquet_bytes` writes it as a MAP);
- Platform "does not accept null or empty values ... the key should be excluded"
  (https://experienceleague.adobe.com/en/docs/experience-platform/xdm/schema/composition). A Parquet column
  cannot be left out of one row, so a null cell is how Parquet says "absent" (the sandbox reads it that way
  too). To get as close to "omitted" as Parquet allows, empty strings become null, a struct whose fields are
  all null is itself null (so no empty `person.name {}` object), and identities with a null/empty id are left
  out of the map rather than sent with a null id;
- datetimes are UTC TIMESTAMP(MILLIS), the Parquet type of XDM DateTime in Adobe's mapping table
  (https://experienceleague.adobe.com/en/docs/experience-platform/xdm/schema/field-constraints#parquet);
  decimals become doubles (XDM `number` is a double).
"""

import io
import itertools
import math
import uuid
from collections.abc import Mapping
from typing import Any, Literal

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Namespace of the UUIDv5 `_id`s: fixed forever, or every re-sent event would get a new `_id`.
XDM_ID_NAMESPACE = uuid.UUID("6f1c8a52-3f0e-5b7e-9d1a-5a7c2b0e4d11")
#: Top-level XDM fields this module fills itself; `fields` may not target them.
RESERVED_ROOTS = frozenset({"_id", "timestamp", "eventType", "identityMap"})


class XdmMappingError(ValueError):
    """The mapping does not fit the frame (missing column, unmapped event value, null key or timestamp)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IdentitySpec(_Strict):
    """One identity namespace of `identityMap`: which column holds the id and whether it is the primary."""

    column: str
    primary: bool = False
    authenticated_state: Literal["ambiguous", "authenticated", "loggedOut"] | None = None


class EventTypeSpec(_Strict):
    """How an ExperienceEvent's `eventType` is derived: canonical value -> XDM eventType."""

    column: str
    values: dict[str, str] = Field(min_length=1)


class XdmMapping(_Strict):
    """How one canonical frame becomes the records of one Platform dataset."""

    dataset: str = Field(min_length=1, description="Experience Platform dataset id.")
    xdm_class: Literal["profile", "experience_event"]
    fields: dict[str, str] = Field(default_factory=dict, description="XDM dot path -> canonical column.")
    identities: dict[str, IdentitySpec] = Field(default_factory=dict, description="Namespace -> identity.")
    event_type: EventTypeSpec | None = None
    id_columns: list[str] = Field(
        default_factory=list, description="Columns the `_id` is derived from (default: the primary key's)."
    )
    timestamp: str | None = Field(default=None, description="Column of the event time (ExperienceEvents).")

    @model_validator(mode="after")
    def _check(self) -> "XdmMapping":
        if self.xdm_class == "experience_event":
            # `_id` and `timestamp` are required by the ExperienceEvent class.
            if not self.timestamp:
                raise ValueError("an experience_event mapping needs `timestamp`")
        elif self.timestamp or self.event_type:
            raise ValueError("`timestamp` and `event_type` only exist on experience_event mappings")
        primaries = [ns for ns, spec in self.identities.items() if spec.primary]
        if len(primaries) > 1:
            raise ValueError(f"only one identity may be primary, got {primaries}")
        paths = sorted(self.fields)
        for path in paths:
            parts = path.split(".")
            if not all(p and (p[0].isalpha() or p[0] == "_") and p.replace("_", "a").isalnum() for p in parts):
                raise ValueError(f"field path {path!r} is not a dot path of XDM names")
            if parts[0] in RESERVED_ROOTS:
                raise ValueError(f"field path {path!r}: {parts[0]} is filled from id_columns/timestamp/"
                                 "event_type/identities, not from `fields`")
        for shorter, longer in itertools.pairwise(paths):
            if longer.startswith(shorter + "."):
                raise ValueError(f"field path {shorter!r} is both a value and the parent of {longer!r}")
        return self

    def source_columns(self) -> list[str]:
        """Every canonical column the mapping reads, in a stable order."""
        cols = [*self.id_columns]
        if self.timestamp:
            cols.append(self.timestamp)
        if self.event_type:
            cols.append(self.event_type.column)
        cols += [spec.column for spec in self.identities.values()]
        cols += list(self.fields.values())
        return list(dict.fromkeys(cols))


def column_lineage(mapping: XdmMapping) -> dict[str, list[str]]:
    """XDM path -> canonical columns it is computed from (for Dagster column lineage)."""
    out: dict[str, list[str]] = {}
    if mapping.id_columns:
        out["_id"] = list(mapping.id_columns)
    if mapping.timestamp:
        out["timestamp"] = [mapping.timestamp]
    if mapping.event_type:
        out["eventType"] = [mapping.event_type.column]
    for namespace, spec in mapping.identities.items():
        out[f"identityMap.{namespace}"] = [spec.column]
    for path, column in mapping.fields.items():
        out[path] = [column]
    return out


# ---------------------------------------------------------------------------------------------------
# Frame -> XDM


def _leaf(column: str, dtype: pl.DataType) -> pl.Expr:
    """One canonical column as the Parquet value XDM expects; nulls stay null (= absent)."""
    col = pl.col(column)
    if dtype == pl.Null:
        # An all-null column with no type (e.g. built from Python Nones): most XDM leaves are strings, and a
        # typed null column keeps the Parquet schema readable where an untyped one would not be.
        return col.cast(pl.String)
    if isinstance(dtype, pl.Decimal):
        return col.cast(pl.Float64)
    if isinstance(dtype, pl.Datetime):
        utc = col.dt.convert_time_zone("UTC") if dtype.time_zone else col.dt.replace_time_zone("UTC")
        return utc.dt.cast_time_unit("ms")  # XDM DateTime is INT64 TIMESTAMP_MILLIS in Parquet
    if isinstance(dtype, (pl.Categorical, pl.Enum)):
        col = col.cast(pl.String)
        dtype = pl.String()
    if dtype == pl.String:
        return pl.when(col.str.len_chars() > 0).then(col).otherwise(None)  # "" is not accepted either
    if dtype.is_unsigned_integer():
        return col.cast(pl.Int64)
    return col


def _struct(children: dict[str, pl.Expr]) -> pl.Expr:
    """A struct of `children`, or null when every child is null (an empty object is not accepted)."""
    exprs = [expr.alias(name) for name, expr in children.items()]
    return pl.when(pl.any_horizontal(e.is_not_null() for e in exprs)).then(pl.struct(exprs)).otherwise(None)


def _tree(fields: Mapping[str, str], schema: pl.Schema) -> dict[str, pl.Expr]:
    """Top-level XDM columns built from dot paths, nested as structs."""
    root: dict[str, Any] = {}
    for path, column in fields.items():
        *parents, name = path.split(".")
        node = root
        for part in parents:
            node = node.setdefault(part, {})
        node[name] = _leaf(column, schema[column])

    def build(node: dict[str, Any]) -> dict[str, pl.Expr]:
        return {k: _struct(build(v)) if isinstance(v, dict) else v for k, v in node.items()}

    return build(root)


def _identity_map(identities: Mapping[str, IdentitySpec]) -> pl.Expr:
    """list<struct<key, value: list<struct<id, primary[, authenticatedState]>>>>, null when empty."""
    entries = []
    for namespace, spec in identities.items():
        ident = pl.col(spec.column).cast(pl.String)
        parts = [ident.alias("id"), pl.lit(spec.primary).alias("primary")]
        if spec.authenticated_state:
            parts.append(pl.lit(spec.authenticated_state).alias("authenticatedState"))
        entry = pl.struct(pl.lit(namespace).alias("key"), pl.concat_list(pl.struct(parts)).alias("value"))
        # A missing id leaves the namespace out instead of sending {"id": null}.
        entries.append(pl.when(ident.str.len_chars() > 0).then(entry).otherwise(None))
    # `list.filter` rather than `list.drop_nulls()`: the same result, but drop_nulls on a list of structs
    # took ~12 s per million rows in polars 2.1 (filter: 0.07 s).
    listed = pl.concat_list(entries).list.filter(pl.element().is_not_null())
    return pl.when(listed.list.len() > 0).then(listed).otherwise(None)


def _record_ids(frame: pl.DataFrame, mapping: XdmMapping) -> pl.Series:
    """UUIDv5 of dataset + primary key: the same row always gets the same `_id` (Profile de-duplicates on it).

    Equal to `uuid.uuid5(XDM_ID_NAMESPACE, "\\x1f".join((dataset, *key)))` (tested), computed in bulk:
    DuckDB's SHA-1 over namespace bytes + UTF-8 name, then RFC 4122's version and variant bits set on the
    hex digest. A Python loop over `uuid.uuid5` spent ~9 s per million rows.
    """
    keys = frame.select(pl.col(c).cast(pl.String) for c in mapping.id_columns)
    nulls = keys.select(pl.any_horizontal(pl.all().is_null()).sum()).item()
    if nulls:
        raise XdmMappingError(f"{nulls} row(s) have a null key in {mapping.id_columns}: no `_id` can be derived")
    names = keys.select(pl.concat_str([pl.lit(mapping.dataset), *keys.columns], separator="\x1f").alias("name"))
    with duckdb.connect() as con:
        con.register("names", names)
        digest = con.execute("SELECT sha1(?::BLOB || encode(name)) AS h FROM names",
                             [XDM_ID_NAMESPACE.bytes]).pl().get_column("h")
    h = pl.col("h")
    return pl.select(h=digest).select(pl.concat_str([
        h.str.slice(0, 8), pl.lit("-"), h.str.slice(8, 4),
        pl.lit("-5"), h.str.slice(13, 3),  # version 5 in the high nibble of byte 6
        pl.lit("-"), h.str.slice(16, 1).replace_strict(_VARIANT), h.str.slice(17, 3),  # variant 10xx
        pl.lit("-"), h.str.slice(20, 12),
    ]).alias("_id")).get_column("_id")


#: The first hex digit of byte 8 with the RFC 4122 variant (binary 10xx) applied.
_VARIANT = {f"{n:x}": f"{(n & 0x3) | 0x8:x}" for n in range(16)}


def to_xdm(frame: pl.DataFrame, mapping: XdmMapping) -> pl.DataFrame:
    """Map a canonical clean frame to XDM records (nested structs), ready for `to_parquet_bytes`."""
    missing = [c for c in mapping.source_columns() if c not in frame.columns]
    if missing:
        raise XdmMappingError(f"columns {missing} named by the mapping of dataset {mapping.dataset} are not in "
                              f"the frame (it has {frame.columns})")
    exprs: list[pl.Expr] = []
    if mapping.id_columns:
        exprs.append(pl.lit(_record_ids(frame, mapping)).alias("_id"))
    if mapping.timestamp:
        nulls = frame.get_column(mapping.timestamp).null_count()
        if nulls:
            raise XdmMappingError(f"{nulls} row(s) have a null {mapping.timestamp}: an ExperienceEvent needs a "
                                  "timestamp")
        exprs.append(_leaf(mapping.timestamp, frame.schema[mapping.timestamp]).alias("timestamp"))
    if mapping.event_type:
        spec = mapping.event_type
        seen = frame.get_column(spec.column).drop_nulls().unique().to_list()
        unmapped = sorted(str(v) for v in seen if v not in spec.values)
        if unmapped:
            raise XdmMappingError(f"{spec.column} values {unmapped} have no eventType in the mapping of dataset "
                                  f"{mapping.dataset}")
        exprs.append(pl.col(spec.column).replace_strict(spec.values, default=None, return_dtype=pl.String)
                     .alias("eventType"))
    if mapping.identities:
        exprs.append(_identity_map(mapping.identities).alias("identityMap"))
    exprs += [expr.alias(name) for name, expr in _tree(mapping.fields, frame.schema).items()]
    return frame.select(exprs)


def _as_map(column: pa.ChunkedArray) -> pa.Array:
    """list<struct<key, value>> -> map<key, value> (same layout; Arrow has no direct cast)."""
    lists = column.combine_chunks()
    entries = lists.flatten()  # the entries of the non-null rows, in order
    lengths = pc.fill_null(pc.list_value_length(lists), 0)
    offsets = pa.concat_arrays([pa.array([0], pa.int32()),
                                pc.cumulative_sum(lengths).cast(pa.int32())])
    return pa.MapArray.from_arrays(offsets, entries.field("key"), entries.field("value"),
                                   mask=lists.is_null())


def to_parquet_bytes(frame: pl.DataFrame) -> bytes:
    """Write an XDM frame as one Parquet file (snappy), with `identityMap` as a Parquet MAP."""
    table = frame.to_arrow(compat_level=pl.CompatLevel.oldest())
    if "identityMap" in table.column_names:
        index = table.column_names.index("identityMap")
        table = table.set_column(index, "identityMap", _as_map(table.column(index)))
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="snappy")
    return buffer.getvalue()


def to_parquet_files(frame: pl.DataFrame, max_bytes: int) -> list[bytes]:
    """The frame as Parquet files of at most `max_bytes` each, in row order: one file when it fits.

    A day over Platform's small-file limit (256 MB) becomes several files of one batch. The first cut
    aims 10% under the limit (rows differ in size); a part that is still too large is cut again. A single
    row larger than the limit is returned as is: the client then refuses it, naming its size.
    """
    whole = to_parquet_bytes(frame)
    if len(whole) <= max_bytes or frame.height <= 1:
        return [whole]
    parts = max(2, math.ceil(len(whole) * 1.1 / max_bytes))
    del whole
    rows = math.ceil(frame.height / parts)
    return [data for offset in range(0, frame.height, rows)
            for data in to_parquet_files(frame.slice(offset, rows), max_bytes)]

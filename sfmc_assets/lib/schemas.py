"""pandera contracts of the clean tables: what a partition must satisfy before anything is published.

A contract is derived, per partition, from what Marketing Cloud allows for that data extension (the
fields as it described them when the partition was read) plus what the configuration declares:

- from the metadata: each column's type; not-null only where Marketing Cloud requires a value; text
  lengths; Decimal precision and scale (the type); e-mail format for EmailAddress fields; the primary
  key (every key column) unique;
- from the configuration: `rules` (required, ranges, allowed values, regex, lengths);
- from a `kind` overlay: the roles' types, canonical enums, e-mail format, non-negative counts and
  amounts; the key and the delta column are never empty;
- always: values that did not parse (`_parse_errors`) and, for incremental reads, every delta value
  inside the partition's UTC day.

A column that Marketing Cloud allows to be empty never fails for being empty unless the configuration
says it is required: a row the source may legally hold is never quarantined.
"""

import datetime as dt
from collections.abc import Sequence

import pandera.polars as pa
import polars as pl

from sfmc_assets.lib.canonical import Role
from sfmc_assets.lib.config import ColumnRules, DataExtensionConfig
from sfmc_assets.lib.marketing_cloud.fields import FieldSpec
from sfmc_assets.lib.marketing_cloud.types import PARSE_ERRORS, polars_dtype
from sfmc_assets.lib.transforms import PARTITION_DATE, email_columns, key_columns, time_column

#: Deliberately simple: one @, no spaces, a dot in the domain. Deliverability is the ESP's job.
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
_TEXT_TYPES = ("Text", "EmailAddress", "Phone", "Locale")
#: The rule that names rows holding values that did not parse as their Marketing Cloud type.
PARSE_CHECK = "values_parse"


def _parses(data: pa.PolarsData) -> pl.LazyFrame:
    return data.lazyframe.select(pl.col(data.key).is_null())


def _declared(rules: ColumnRules) -> list[pa.Check]:
    """The checks a `rules:` entry declares."""
    checks: list[pa.Check] = []
    for name, bound in (("ge", rules.ge), ("gt", rules.gt), ("le", rules.le), ("lt", rules.lt)):
        if bound is not None:
            checks.append(getattr(pa.Check, name)(bound))
    if rules.isin is not None:
        checks.append(pa.Check.isin(list(rules.isin)))
    if rules.regex is not None:
        checks.append(pa.Check.str_matches(rules.regex))
    if rules.min_length is not None or rules.max_length is not None:
        checks.append(pa.Check.str_length(min_value=rules.min_length, max_value=rules.max_length))
    return checks


def _field_checks(field: FieldSpec, role: Role | None, is_email: bool) -> list[pa.Check]:
    """What the metadata (and a role) say about one column's values."""
    checks: list[pa.Check] = []
    if field.type in _TEXT_TYPES and field.length and not (role and role.enum):
        checks.append(pa.Check.str_length(max_value=field.length))
    if is_email:
        checks.append(pa.Check.str_matches(EMAIL_PATTERN))
    if role is not None and role.enum is not None:
        checks.append(pa.Check.isin(list(role.enum)))
    if role is not None and role.ge is not None:
        checks.append(pa.Check.ge(role.ge))
    return checks


def _description(field: FieldSpec, role: Role | None) -> str:
    source = f"Marketing Cloud `{field.name}`, {field.describe()}{'' if field.is_nullable else ', required'}"
    if role is None:
        return source + "."
    empty = f" Empty: {role.when_empty}." if role.when_empty else ""
    return f"{role.description} Source: {source}.{empty}"


def contract(
    de: DataExtensionConfig,
    fields: Sequence[FieldSpec],
    window: tuple[dt.datetime, dt.datetime] | None = None,
) -> pa.DataFrameSchema:
    """The contract of one partition of `de`, read with `fields`; `window` (incremental reads) is the
    partition's `[start, end)`, which every delta value must fall in."""
    kind = de.kind_def
    names = de.clean_names(fields)
    key, time = key_columns(de, fields), time_column(de)
    emails = set(email_columns(de, fields))
    columns: dict[str, pa.Column] = {}
    for f in fields:
        name = names[f.name]
        role = kind.role(name) if kind is not None and de.role_of(f.name) else None
        rules = de.rules.get(name, ColumnRules())
        checks = _field_checks(f, role, name in emails) + _declared(rules)
        if name == time and window is not None:
            # Reported as `in_range(start, end)`: the window itself says which partition was checked.
            checks.append(pa.Check.in_range(*window, include_min=True, include_max=False))
        columns[name] = pa.Column(
            role.dtype if role is not None else polars_dtype(f),
            nullable=f.is_nullable and not rules.required and name not in key and name != time,
            unique=len(key) == 1 and name == key[0],
            checks=checks, description=_description(f, role),
        )
    for role_name in de.role_defaults():
        role = kind.role(role_name)  # type: ignore[union-attr]
        columns[role_name] = pa.Column(role.dtype, nullable=True, description=f"{role.description} (not mapped: "
                                       "always empty)")
    columns[PARSE_ERRORS] = pa.Column(pl.String, nullable=True, checks=[pa.Check(_parses, name=PARSE_CHECK)],
                                      description="Values that did not parse as their Marketing Cloud type.")
    columns[PARTITION_DATE] = pa.Column(pl.Date, description="UTC day of the delta value, or of the snapshot.")
    if de.kind == "contacts":
        columns["days_since_last_order"] = pa.Column(
            pl.Int64, nullable=True, checks=[pa.Check.ge(0)],
            description="Days from the last order to the end of the partition's day.")
    return pa.DataFrameSchema(columns, unique=list(key) if len(key) > 1 else None, strict=True, coerce=False,
                              name=f"{de.name}_clean")

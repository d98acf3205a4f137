"""Property tests of derived contracts: any metadata gives a contract that accepts every legal row.

A data extension of arbitrary shape (field types, lengths, nullability, one to three key columns, names
with spaces and accents, unknown types, `sync: full` or incremental) is generated with rows that
Marketing Cloud may legally hold for that metadata, written as the rowset API serves them. The rows go
through the same functions as a partition (`typed_frame` -> `plan_clean` -> `contract` -> the gate) and
none may fail: a legal row is never quarantined, whatever the data extension looks like.
"""

import datetime as dt
from decimal import Decimal, localcontext

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfmc_assets.lib.config import DataExtensionConfig
from sfmc_assets.lib.extract import Window
from sfmc_assets.lib.marketing_cloud.fields import FieldSpec
from sfmc_assets.lib.marketing_cloud.types import PARSE_ERRORS, typed_frame
from sfmc_assets.lib.schemas import contract
from sfmc_assets.lib.transforms import plan_clean
from sfmc_assets.lib.validation import validate
from sfmc_assets_tests.lib.test_properties import OFFSET, OFFSET_HOURS, sfmc_date

GENERIC = settings(max_examples=60, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                          HealthCheck.filter_too_much])
WORDS = ["Subscriber Key", "Email", "Opt In", "Score", "Prénom", "Ørsted Tier", "Order Total", "Last Seen",
         "Channel", "Notes", "Phone", "Locale", "Points", "Rate", "Flag", "Created"]
TYPES = ["Text", "EmailAddress", "Phone", "Locale", "Number", "Decimal", "Boolean", "Date", "LongNumber"]


@st.composite
def field_specs(draw: st.DrawFn) -> list[FieldSpec]:
    names = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=8, unique=True))
    specs = []
    for name in names:
        type_ = draw(st.sampled_from(TYPES))
        length = scale = None
        if type_ in ("Text", "EmailAddress", "Phone", "Locale"):
            length = draw(st.integers(min_value=1 if type_ != "EmailAddress" else 6, max_value=300))
        elif type_ == "Decimal":
            length = draw(st.integers(min_value=1, max_value=29))
            scale = draw(st.integers(min_value=0, max_value=min(length, 8)))
        specs.append(FieldSpec(name=name, type=type_, length=length, scale=scale,
                               is_nullable=draw(st.booleans())))
    n_keys = draw(st.integers(min_value=0, max_value=min(3, len(specs))))
    keyable = [s for s in specs if s.type in ("Text", "Number")]
    if not keyable:  # every data extension may have a key; `sync: full` needs one
        keyable = [FieldSpec(name="Row Key", type="Text", length=36)]
        specs.append(keyable[0])
        n_keys = max(n_keys, 1)
    keyed = keyable[:n_keys]
    return [s.model_copy(update={"is_primary_key": True, "is_nullable": False}) if s in keyed else s for s in specs]


def _text(n: int) -> st.SearchStrategy[str]:
    return st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=n).filter(lambda v: v.strip())


def legal_value(spec: FieldSpec, window: Window | None, is_delta: bool) -> st.SearchStrategy[str]:
    """A value Marketing Cloud may hold in `spec`, as the rowset API serves it (a string)."""
    if is_delta and window is not None:
        start = window.start.replace(tzinfo=None) + OFFSET
        moment = st.datetimes(min_value=start, max_value=start + dt.timedelta(seconds=86399))
        return moment.map(lambda d: sfmc_date(d.replace(microsecond=0)))
    if spec.type == "Number":
        return st.integers(min_value=-(2**31), max_value=2**31 - 1).map(str)
    if spec.type == "Decimal":
        digits = (spec.length or 18) - (spec.scale or 0)
        with localcontext() as exact:  # 29 digits exceed the default 28-digit context
            exact.prec = 60
            top = Decimal(10) ** digits - Decimal(1).scaleb(-(spec.scale or 0))
        return st.decimals(min_value=-top, max_value=top, places=spec.scale or 0, allow_nan=False,
                           allow_infinity=False).map(lambda d: f"{d:f}")
    if spec.type == "Boolean":
        return st.sampled_from(["True", "False"])
    if spec.type == "Date":  # SQL Server datetime: 1753-01-01 .. 9999-12-31 (server time)
        moment = st.datetimes(min_value=dt.datetime(1753, 1, 2), max_value=dt.datetime(9999, 12, 30))
        return moment.map(lambda d: sfmc_date(d.replace(microsecond=0)))
    if spec.type == "EmailAddress":
        part = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", min_size=1, max_size=12)
        email = st.builds("{}@{}.{}".format, part, part, st.sampled_from(["com", "fr", "example"]))
        return email.filter(lambda v: len(v) <= (spec.length or 254))
    return _text(spec.length or 4000)  # Text, Phone, Locale, and types this reader does not know


@st.composite
def data_extensions(draw: st.DrawFn) -> tuple[DataExtensionConfig, Window | None]:
    fields = draw(field_specs())
    dates = [f for f in fields if f.type == "Date" and not f.is_primary_key]
    if dates and draw(st.booleans()):
        delta = dates[0]
        fields = [f.model_copy(update={"is_nullable": False}) if f is delta else f for f in fields]
        day = draw(st.dates(min_value=dt.date(1800, 1, 2), max_value=dt.date(9990, 1, 1)))
        de = DataExtensionConfig(name="any_de", external_key="Any", delta_column=delta.name, fields=tuple(fields))
        return de, Window.day(day.isoformat())
    if not any(f.is_primary_key for f in fields):  # a full snapshot needs a key: mark the first keyable field
        first = next(f for f in fields if f.type in ("Text", "Number"))
        fields = [f.model_copy(update={"is_primary_key": True, "is_nullable": False}) if f is first else f
                  for f in fields]
    return DataExtensionConfig(name="any_de", external_key="Any", sync="full", fields=tuple(fields)), None


@given(data=st.data())
@GENERIC
def test_every_legal_row_passes_the_derived_contract(data: st.DataObject) -> None:
    de, window = data.draw(data_extensions())
    assert de.fields is not None
    n = data.draw(st.integers(min_value=0, max_value=8))
    keys = [f.name for f in de.fields if f.is_primary_key]
    rows: list[dict[str, str]] = []
    seen: set[tuple[str, ...]] = set()
    for _ in range(n):
        row = {}
        for f in de.fields:
            value = legal_value(f, window, f.name == de.delta_column)
            row[f.name] = data.draw(value if not f.is_nullable else st.one_of(st.just(""), value))
        key = tuple(row[k] for k in keys)
        if keys and key in seen:
            continue  # Marketing Cloud enforces its primary key
        seen.add(key)
        rows.append(row)
    strings = pl.DataFrame(rows, schema={f.name: pl.String for f in de.fields})
    typed = typed_frame(strings, de.fields, OFFSET_HOURS)
    assert typed[PARSE_ERRORS].null_count() == typed.height, typed[PARSE_ERRORS].drop_nulls().to_list()
    as_of = window.end if window else dt.datetime(2026, 11, 30, tzinfo=dt.timezone.utc)
    plan = plan_clean(typed, de, as_of, de.fields)
    schema = contract(de, de.fields, (window.start, window.end) if window else None)
    gate = validate(plan.frame.collect(), schema)
    assert gate.failing_rows == 0 and not gate.blocking_schema_errors, gate.failures_by_rule()
    assert gate.valid.height == len(rows) and plan.removed == 0


def test_the_widest_decimal_marketing_cloud_allows_passes() -> None:
    """Regression: Decimal(29,0)'s largest value has 29 digits, more than Python's default context."""
    key = FieldSpec(name="Id", type="Text", length=10, is_primary_key=True, is_nullable=False)
    spec = FieldSpec(name="Big", type="Decimal", length=29, scale=0, is_nullable=False)
    de = DataExtensionConfig(name="any_de", external_key="Any", sync="full", fields=(key, spec))
    strings = pl.DataFrame({"Id": ["a", "b", "c"], "Big": ["9" * 29, "-" + "9" * 29, "0"]})
    typed = typed_frame(strings, de.fields, OFFSET_HOURS)
    assert typed[PARSE_ERRORS].null_count() == 3
    plan = plan_clean(typed, de, dt.datetime(2026, 11, 30, tzinfo=dt.timezone.utc), de.fields)
    assert validate(plan.frame.collect(), contract(de, de.fields)).failing_rows == 0

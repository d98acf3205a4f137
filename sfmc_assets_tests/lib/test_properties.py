"""Property-based tests: arbitrary strings in, typed data or a named failure out, never an exception.

Covers the path a rowset page takes (`typed_frame` -> `clean` -> `validate`) for every configured data
extension, the server-time arithmetic (dates and `$filter` literals) and `normalize_auth_base_uri`.
"""

import datetime as dt
import re
from decimal import Decimal

import polars as pl
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from sfmc_assets.lib.canonical import MONEY, UTC_DATETIME
from sfmc_assets.lib.config import DataExtensionConfig, FieldSpec, load_config
from sfmc_assets.lib.extract import Window, window_filter
from sfmc_assets.lib.marketing_cloud.client import normalize_auth_base_uri
from sfmc_assets.lib.marketing_cloud.types import PARSE_ERRORS, frame_schema, typed_frame
from sfmc_assets.lib.personal import PII_ROLES
from sfmc_assets.lib.schemas import contract
from sfmc_assets.lib.transforms import clean
from sfmc_assets.lib.validation import REJECTION_REASONS, validate

UTC = dt.timezone.utc
CONFIG = load_config()
#: The data extensions with a canonical overlay (generic ones: `test_generic_contracts.py`).
DATA_EXTENSIONS = {de.name: de for de in CONFIG.data_extensions if de.kind}
OFFSET = CONFIG.source.offset  # -6 h: Marketing Cloud server time
OFFSET_HOURS = OFFSET.total_seconds() / 3600
EPOCH = dt.datetime(1970, 1, 1)
US = dt.timedelta(microseconds=1)
#: What a Python datetime (hence a pandera check) can hold, in epoch microseconds.
PY_RANGE_US = ((dt.datetime.min - EPOCH) // US, (dt.datetime.max - EPOCH) // US)
#: Dates Polars parses to a UTC value outside Python's range: they blocked a partition (see report).
OUT_OF_RANGE_DATES = ("12/31/9999 11:00:00 PM", "1/1/0000 1:00:00 AM", "1/1/-1 1:00:00 AM")

#: What Polars' `strip_chars()` trims (Unicode White_Space; unlike `str.isspace`, not \x1c-\x1f).
WHITESPACE = "".join(map(chr, (
    0x9, 0xA, 0xB, 0xC, 0xD, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029,
    0x202F, 0x205F, 0x3000,
)))

PROPERTY = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PIPELINE = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def blank(value: str) -> bool:
    return value.strip(WHITESPACE) == ""


# --- strategies -------------------------------------------------------------------------------------

#: Any valid UTF-8 text: unicode, control characters, NUL, combining marks (surrogates cannot be encoded).
any_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
pad = st.text(st.sampled_from(" \t\n\r\u00a0\u3000\u2003"), max_size=3)
blanks = st.one_of(st.just(""), pad)


@st.composite
def padded(draw: st.DrawFn, inner: st.SearchStrategy[str]) -> str:
    return draw(pad) + draw(inner) + draw(pad)


@st.composite
def any_casing(draw: st.DrawFn, word: str) -> str:
    return "".join(c.upper() if draw(st.booleans()) else c.lower() for c in word)


def sfmc_date(d: dt.datetime, zero_pad: bool = False, lower: bool = False) -> str:
    """`M/d/yyyy h:mm:ss AM`, as the rowset API writes dates (server time)."""
    hour = d.hour % 12 or 12
    ampm = "AM" if d.hour < 12 else "PM"
    fmt = "{:02d}/{:02d}" if zero_pad else "{}/{}"
    date = fmt.format(d.month, d.day)
    hh = f"{hour:02d}" if zero_pad else str(hour)
    return f"{date}/{d.year:04d} {hh}:{d.minute:02d}:{d.second:02d} {ampm.lower() if lower else ampm}"


extreme_datetimes = st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59))


@st.composite
def valid_date_strings(draw: st.DrawFn, values: st.SearchStrategy[dt.datetime] = extreme_datetimes) -> str:
    d = draw(values).replace(microsecond=0)
    return sfmc_date(d, zero_pad=draw(st.booleans()), lower=draw(st.booleans()))


garbage_dates = st.one_of(
    st.sampled_from(["13/1/2026 1:00:00 AM", "2/30/2024 1:00:00 AM", "2/29/2023 1:00:00 AM",
                     "1/1/2026 13:00:00 PM", "1/1/2026 0:00:00 AM", "1/1/10000 12:00:00 AM",
                     "1/1/2026 1:60:00 AM", "2026-10-02T00:00:00Z", "1/1/2026", "12:00:00 AM",
                     "0/0/0000 0:00:00 AM", "1/1/+2026 1:00:00 AM", "NaN", *OUT_OF_RANGE_DATES]),
    any_text,
)

number_strings = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(str),
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.builds("{}e{}".format, st.integers(-99, 99), st.integers(-400, 400)),
    st.sampled_from(["NaN", "-nan", "inf", "-Infinity", "+5", "-0", "1_000", "1,000", "0x10", "\u0663", "\uff11\uff12",
                     "1.0", "4.5", "9223372036854775808", "-9223372036854775809", "--1", "5\x00"]),
    any_text,
)

decimal_strings = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.decimals(min_value=-(10**16), max_value=10**16, places=2).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.builds("{}.{}e{}".format, st.integers(-999, 999), st.integers(0, 999), st.integers(-400, 400)),
    st.sampled_from(["NaN", "inf", "1e400", "1e-400", ".5", "5.", "1,5", "99999999999999999.99",
                     "123456789012345678901234567890", "-0.00", "0e99999"]),
    any_text,
)

bool_strings = st.one_of(
    st.sampled_from(["true", "false", "1", "0"]).flatmap(any_casing),
    st.sampled_from(["yes", "no", "t", "f", "on", "2", "True\x00", "\u0131", "trUe1"]),
    any_text,
)


def arbitrary_value(spec: FieldSpec) -> st.SearchStrategy[str]:
    """Plausible and implausible rowset strings for one field, padded or blank now and then."""
    typed = {
        "Number": number_strings,
        "Decimal": decimal_strings,
        "Boolean": bool_strings,
        "Date": st.one_of(valid_date_strings(), garbage_dates),
    }.get(spec.type, any_text)
    return st.one_of(typed, padded(typed), blanks)


@st.composite
def string_pages(draw: st.DrawFn, fields: tuple[FieldSpec, ...]) -> pl.DataFrame:
    n = draw(st.integers(min_value=0, max_value=6))
    columns = {f.name: draw(st.lists(arbitrary_value(f), min_size=n, max_size=n)) for f in fields}
    return pl.DataFrame(columns, schema={f.name: pl.String for f in fields})


# --- typed_frame ------------------------------------------------------------------------------------


def _error_for(spec: FieldSpec, raw: str) -> str:
    return f"{spec.name}: '{raw}' is not a valid {spec.type}"


@pytest.mark.parametrize("name", DATA_EXTENSIONS)
@PROPERTY
@given(data=st.data())
def test_typed_frame_types_every_value_or_names_it(name: str, data: st.DataObject) -> None:
    fields = DATA_EXTENSIONS[name].fields
    assert fields is not None
    strings = data.draw(string_pages(fields))
    out = typed_frame(strings, fields, OFFSET_HOURS)

    assert out.schema == frame_schema(fields)
    assert out.height == strings.height
    # Dates as epoch microseconds: 12/31/9999 evening server time is year 10000 in UTC, which Polars
    # holds but Python's datetime cannot.
    values = out.select(pl.col(c).dt.epoch("us") if out.schema[c] == UTC_DATETIME else pl.col(c) for c in out.columns)
    for i in range(out.height):
        raw_row = strings.row(i, named=True)
        row = values.row(i, named=True)
        errors = row[PARSE_ERRORS]
        failed = []
        for spec in fields:
            raw, value = raw_row[spec.name], row[spec.name]
            if spec.type in ("Text", "EmailAddress", "Phone", "Locale"):
                assert value == (None if raw == "" else raw), "text is kept verbatim, '' is NULL"
                continue
            if blank(raw):
                assert value is None
                continue
            if value is None:
                failed.append(_error_for(spec, raw))
            elif spec.type == "Boolean":
                assert value is (raw.strip(WHITESPACE).lower() in ("true", "1"))
            elif spec.type == "Date":
                assert PY_RANGE_US[0] <= value <= PY_RANGE_US[1], "a UTC value Python can hold"
            if spec.type == "Boolean" and raw.strip(WHITESPACE).lower() in ("true", "false", "1", "0"):
                assert value is not None
            if spec.type == "Number" and re.fullmatch(r"[+-]?[0-9]+", raw.strip(WHITESPACE)):
                assert value == (int(raw) if -(2**63) <= int(raw) < 2**63 else None)
        if failed:
            assert errors == "; ".join(failed)
        else:
            assert errors is None


@PROPERTY
@given(d=extreme_datetimes, zero_pad=st.booleans(), lower=st.booleans(),
       offset_quarters=st.integers(min_value=-12 * 4, max_value=14 * 4))
@example(d=dt.datetime(9999, 12, 31, 23, 0), zero_pad=False, lower=False, offset_quarters=-6 * 4)
@example(d=dt.datetime(9999, 12, 31, 17, 59, 59), zero_pad=False, lower=False, offset_quarters=-6 * 4)
@example(d=dt.datetime(1, 1, 1, 0, 0), zero_pad=True, lower=False, offset_quarters=2 * 4)
def test_valid_date_round_trips_to_utc(d: dt.datetime, zero_pad: bool, lower: bool, offset_quarters: int) -> None:
    """Server time - offset = UTC (UTC-6: server time + 6 h), for every year 1..9999 and any fixed offset;
    a UTC value beyond year 1..9999 (12/31/9999 evening at UTC-6) is a named parse error, not a value."""
    d = d.replace(microsecond=0)
    spec = FieldSpec(name="When", type="Date")
    offset_hours = offset_quarters / 4
    raw = sfmc_date(d, zero_pad, lower)
    out = typed_frame(pl.DataFrame({"When": [raw]}), (spec,), offset_hours)
    assert out.schema["When"] == UTC_DATETIME
    expected = (d - EPOCH - dt.timedelta(hours=offset_hours)) // US
    if PY_RANGE_US[0] <= expected <= PY_RANGE_US[1]:
        assert out[PARSE_ERRORS][0] is None
        assert out["When"].dt.epoch("us")[0] == expected
    else:
        assert out["When"][0] is None
        assert out[PARSE_ERRORS][0] == f"When: '{raw}' is not a valid Date"


@PROPERTY
@given(d=st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 31, 17, 59, 59)))
def test_server_time_is_utc_minus_six_hours(d: dt.datetime) -> None:
    d = d.replace(microsecond=0)
    out = typed_frame(pl.DataFrame({"When": [sfmc_date(d)]}), (FieldSpec(name="When", type="Date"),), OFFSET_HOURS)
    assert out["When"][0] == (d + dt.timedelta(hours=6)).replace(tzinfo=UTC)


@PROPERTY
@given(value=st.decimals(min_value=0, max_value=Decimal("9999999999999999.99"), places=2), padding=pad)
def test_decimal_in_precision_is_exact(value: Decimal, padding: str) -> None:
    spec = FieldSpec(name="Amount", type="Decimal", length=18, scale=2)
    out = typed_frame(pl.DataFrame({"Amount": [padding + str(value) + padding]}), (spec,), OFFSET_HOURS)
    assert out[PARSE_ERRORS][0] is None
    assert out["Amount"][0] == value


# --- clean + validate -------------------------------------------------------------------------------


def _in_window(window: Window) -> st.SearchStrategy[dt.datetime]:
    """A UTC instant (whole seconds) inside the window, naive."""
    start, end = window.start.replace(tzinfo=None), window.end.replace(tzinfo=None)
    return st.datetimes(min_value=start, max_value=end - dt.timedelta(seconds=1)).map(
        lambda d: d.replace(microsecond=0))


non_blank = st.builds("{}{}".format, st.sampled_from("AzÉß漢0"), any_text)
email_part = st.text(st.characters(categories=("L", "N"), include_characters=".-_+"), min_size=1, max_size=12)
emails = st.builds("{}@{}.{}".format, email_part, email_part, email_part)
bool_words = st.sampled_from(["true", "false", "1", "0"]).flatmap(any_casing)


def _role_of(de: DataExtensionConfig) -> dict[str, str]:
    return {column.lower(): role for role, column in de.columns.items()}


@st.composite
def valid_row(draw: st.DrawFn, de: DataExtensionConfig, window: Window, i: int) -> dict[str, str]:
    """A row the contract accepts, written as the rowset API would (server time, any casing, padding)."""
    kind, roles = de.kind_def, _role_of(de)
    server = OFFSET
    as_of = window.end.replace(tzinfo=None)
    row: dict[str, str] = {}
    assert de.fields is not None
    for spec in de.fields:
        role = kind.role(roles[spec.name.lower()])
        # Empty is valid wherever Marketing Cloud allows it (the field's metadata), whatever the role.
        optional = st.one_of(blanks) if spec.is_nullable else st.nothing()
        if role.name == kind.key_role:
            value = st.builds(f"K{i}-{{}}".format, any_text)
        elif role.name == kind.time_role:
            value = _in_window(window).map(lambda d: sfmc_date(d + server))
        elif role.enum is not None:
            value = st.sampled_from(sorted(de.values[role.name])).flatmap(any_casing) | optional
        elif role.name == "email":
            value = emails
        elif role.dtype == pl.Boolean:
            value = bool_words
        elif role.dtype == pl.Int64:
            value = st.integers(min_value=0, max_value=2**63 - 1).map(str) | optional
        elif role.dtype == MONEY:
            value = st.decimals(min_value=0, max_value=10**16 - 1, places=2).map(str) | optional
        elif role.dtype == UTC_DATETIME:
            value = valid_date_strings(st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=as_of + server)) | optional
        elif role.required or not spec.is_nullable:
            value = non_blank
        else:
            value = any_text | optional
        drawn = st.one_of(value, padded(value)) if role.name != kind.key_role else value
        if spec.type in ("Text", "EmailAddress", "Phone", "Locale") and spec.length:
            drawn = drawn.filter(lambda v, n=spec.length: len(v) <= n)  # Marketing Cloud enforces lengths
        row[spec.name] = draw(drawn)
    return row


@st.composite
def windows(draw: st.DrawFn) -> Window:
    day = draw(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2200, 12, 31)))
    return Window.day(day.isoformat())


def _frame(rows: list[dict[str, str]], de: DataExtensionConfig) -> pl.DataFrame:
    assert de.fields is not None
    return pl.DataFrame(rows, schema={f.name: pl.String for f in de.fields})


def _gate_invariants(frame: pl.DataFrame, window: Window, de: DataExtensionConfig) -> None:
    schema = contract(de, de.fields, (window.start, window.end))
    gate = validate(frame, schema)
    assert not gate.blocking_schema_errors, gate.failures_by_rule()  # clean always yields the contract's shape
    assert gate.rows_checked == frame.height
    assert gate.valid.height + gate.quarantined.height == frame.height
    assert gate.valid.schema == frame.schema
    assert gate.quarantined[REJECTION_REASONS].null_count() == 0
    assert gate.valid[PARSE_ERRORS].null_count() == gate.valid.height
    time_role = de.kind_def.time_role
    assert gate.valid.filter((pl.col(time_role) < window.start) | (pl.col(time_role) >= window.end)).is_empty()
    assert gate.within(0.0) is (gate.failing_rows == 0)
    assert sum(gate.failures_by_rule().values()) == gate.failure_cases.height
    if not gate.failure_cases.is_empty():  # (the clean asset only asks for a sample when something failed)
        sample = gate.sample(50)
        assert sample.columns == ["row", "column", "check", "value"]
        masked = sample.filter(pl.col("column").is_in(list(PII_ROLES)) & pl.col("value").is_not_null())
        assert all(v.endswith("***") and len(v) <= 4 for v in masked["value"].to_list())
    # The gate is stable: what it lets through passes it again.
    again = validate(gate.valid, schema)
    assert again.failing_rows == 0 and again.valid.height == gate.valid.height


@pytest.mark.parametrize("name", DATA_EXTENSIONS)
@PIPELINE
@given(data=st.data())
def test_arbitrary_pages_clean_and_validate_without_raising(name: str, data: st.DataObject) -> None:
    de = DATA_EXTENSIONS[name]
    assert de.fields is not None
    window = data.draw(windows())
    n = data.draw(st.integers(min_value=0, max_value=6))
    rows = []
    for i in range(n):
        valid = data.draw(valid_row(de, window, i))
        junk = {f.name: data.draw(arbitrary_value(f)) for f in de.fields}
        corrupted = data.draw(st.sets(st.sampled_from([f.name for f in de.fields])))
        rows.append(data.draw(st.sampled_from([valid, junk, valid | {k: junk[k] for k in corrupted}])))
    strings = _frame(rows, de)
    typed = typed_frame(strings, de.fields, OFFSET_HOURS)
    cleaned = clean(typed, de, window.end)
    assert cleaned.frame.height + cleaned.removed == typed.height
    kind = de.kind_def
    # De-duplication keeps at least one row of every (trimmed, non-blank) key.
    raw_keys = strings[de.columns[kind.key_role]].to_list()
    assert set(cleaned.frame[kind.key_role].drop_nulls()) == {k.strip(WHITESPACE) for k in raw_keys if not blank(k)}
    # Free text is trimmed and blank text is NULL.
    for role in kind.roles:
        if role.dtype == pl.String and role.enum is None:
            assert all(v == v.strip(WHITESPACE) != "" for v in cleaned.frame[role.name].drop_nulls()), role.name
    _gate_invariants(cleaned.frame, window, de)


@pytest.mark.parametrize("name", DATA_EXTENSIONS)
@PIPELINE
@given(data=st.data())
def test_valid_rows_pass_the_gate(name: str, data: st.DataObject) -> None:
    de = DATA_EXTENSIONS[name]
    assert de.fields is not None
    window = data.draw(windows())
    n = data.draw(st.integers(min_value=1, max_value=6))
    rows = [data.draw(valid_row(de, window, i)) for i in range(n)]
    typed = typed_frame(_frame(rows, de), de.fields, OFFSET_HOURS)
    assert typed[PARSE_ERRORS].null_count() == n, typed[PARSE_ERRORS].drop_nulls().to_list()
    cleaned = clean(typed, de, window.end)
    assert cleaned.removed == 0 and cleaned.frame.height == n
    gate = validate(cleaned.frame, contract(de, de.fields, (window.start, window.end)))
    assert gate.failing_rows == 0, gate.failures_by_rule()
    assert gate.within(0.0) and gate.valid.height == n


@pytest.mark.parametrize("name", DATA_EXTENSIONS)
@settings(PIPELINE, max_examples=5)
@given(data=st.data(), bad_date=st.sampled_from(OUT_OF_RANGE_DATES))
def test_out_of_range_date_quarantines_its_row_without_blocking(name: str, data: st.DataObject, bad_date: str) -> None:
    """Regression: these dates used to reach pandera, whose in_range check then failed for the whole
    column (`year 10000 is out of range`), blocking the partition instead of quarantining one row.
    Also pins the rule's name, which used to depend on which model pandera built first."""
    de = DATA_EXTENSIONS[name]
    assert de.fields is not None
    window = Window.day("2026-10-02")
    rows = [data.draw(valid_row(de, window, i)) for i in range(3)]
    rows[0][de.delta_column] = bad_date
    typed = typed_frame(_frame(rows, de), de.fields, OFFSET_HOURS)
    assert typed[PARSE_ERRORS].to_list()[0] == f"{de.delta_column}: '{bad_date}' is not a valid Date"
    gate = validate(clean(typed, de, window.end).frame, contract(de, de.fields, (window.start, window.end)))
    assert not gate.blocking_schema_errors, gate.failure_cases
    assert (gate.failing_rows, gate.valid.height) == (1, 2)
    assert "_parse_errors: values_parse" in gate.quarantined[REJECTION_REASONS][0]


# --- window_filter ----------------------------------------------------------------------------------

#: SQL Server `datetime` (behind Marketing Cloud Date fields) starts in 1753.
aware = st.builds(
    lambda d, minutes: d.replace(microsecond=0, tzinfo=dt.timezone(dt.timedelta(minutes=minutes))),
    st.datetimes(min_value=dt.datetime(1753, 1, 2), max_value=dt.datetime(9999, 12, 30)),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
)
_FILTER = re.compile(r"^(?P<c1>\w+) gte '(?P<start>[^']*)' and (?P<c2>\w+) lt '(?P<end>[^']*)'$")


@PROPERTY
@given(a=aware, b=aware, column=st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,20}", fullmatch=True))
def test_window_filter_is_half_open_server_time(a: dt.datetime, b: dt.datetime, column: str) -> None:
    assume(a != b)
    window = Window(min(a, b), max(a, b))
    m = _FILTER.match(window_filter(column, window, OFFSET))
    assert m is not None and m["c1"] == m["c2"] == column
    start = dt.datetime.strptime(m["start"], "%Y-%m-%dT%H:%M:%S")
    end = dt.datetime.strptime(m["end"], "%Y-%m-%dT%H:%M:%S")
    # Literals carry no zone and equal the UTC bounds shifted to server time (UTC-6).
    assert start == window.start.astimezone(UTC).replace(tzinfo=None) - dt.timedelta(hours=6)
    assert end == window.end.astimezone(UTC).replace(tzinfo=None) - dt.timedelta(hours=6)
    assert start < end
    # Read back as a rowset date, the start literal is the window's start again.
    spec = FieldSpec(name=column, type="Date")
    back = typed_frame(pl.DataFrame({column: [sfmc_date(start), sfmc_date(end)]}), (spec,), OFFSET_HOURS)
    assert back[column].to_list() == [window.start, window.end]


@PROPERTY
@given(day=st.dates(min_value=dt.date(1753, 1, 2), max_value=dt.date(9999, 12, 30)))
def test_daily_partition_filter(day: dt.date) -> None:
    before = day - dt.timedelta(days=1)
    assert window_filter("ModifiedDate", Window.day(day.isoformat()), OFFSET) == (
        f"ModifiedDate gte '{before:%Y-%m-%d}T18:00:00' and ModifiedDate lt '{day:%Y-%m-%d}T18:00:00'"
    )


@PROPERTY
@given(a=st.datetimes(), b=st.datetimes(), a_aware=st.booleans(), b_aware=st.booleans())
def test_window_rejects_naive_or_empty_intervals(a: dt.datetime, b: dt.datetime, a_aware: bool, b_aware: bool) -> None:
    start = a.replace(tzinfo=UTC) if a_aware else a
    end = b.replace(tzinfo=UTC) if b_aware else b
    if a_aware and b_aware and start < end:
        assert Window(start, end).end > Window(start, end).start
    else:
        with pytest.raises(ValueError, match="a window needs"):
            Window(start, end)


# --- normalize_auth_base_uri ------------------------------------------------------------------------

subdomains = st.from_regex(r"[A-Za-z0-9-]{1,30}", fullmatch=True)
url_like = st.builds(
    "{}{}{}{}{}".format,
    pad,
    st.sampled_from(["https://", "http://", "HTTPS://", "ftp://", "", "//", "://"]),
    st.one_of(subdomains.map("{}.auth.marketingcloudapis.com".format), subdomains, st.just("localhost:8080"),
              any_text),
    st.sampled_from(["", "/", "/v2/token", "/v2/token/", "/a/b/", "?x=1", "#f", "/v2/token?x"]),
    pad,
)


@PROPERTY
@given(value=st.one_of(any_text, url_like, subdomains))
def test_auth_base_uri_is_canonical_or_rejected(value: str) -> None:
    try:
        uri = normalize_auth_base_uri(value)
    except ValueError:
        return
    assert uri.endswith("/")
    assert uri.startswith(("https://", "http://"))
    assert not uri.endswith("/v2/token/") or "/v2/token/v2/token" in value
    # The canonical form is accepted again and stays put.
    assert normalize_auth_base_uri(uri) == uri or "/v2/token/v2/token" in value


@PROPERTY
@given(sub=subdomains, scheme=st.sampled_from(["", "https://", "HTTPS://"]),
       tail=st.sampled_from(["", "/", "/v2/token", "/v2/token/", "/anything/else?q=1"]), padding=pad)
def test_auth_host_and_bare_subdomain_normalise_to_the_auth_endpoint(sub: str, scheme: str, tail: str, padding: str) -> None:
    expected = f"https://{sub.lower()}.auth.marketingcloudapis.com/"
    assert normalize_auth_base_uri(f"{padding}{scheme}{sub}.auth.marketingcloudapis.com{tail}{padding}") == expected
    assert normalize_auth_base_uri(padding + sub + padding) == expected

"""Conversion of the rowset API's strings to typed Polars columns."""

import datetime as dt

import polars as pl

from sfmc_assets.lib.marketing_cloud.fields import FieldSpec
from sfmc_assets.lib.marketing_cloud.types import PARSE_ERRORS, frame_schema, typed_frame

UTC = dt.timezone.utc
FIELDS = (
    FieldSpec(name="Key", type="Text", is_primary_key=True, is_nullable=False),
    FieldSpec(name="Email", type="EmailAddress", length=254),
    FieldSpec(name="Orders", type="Number"),
    FieldSpec(name="Value", type="Decimal", length=18, scale=2),
    FieldSpec(name="OptIn", type="Boolean"),
    FieldSpec(name="When", type="Date"),
)


def _typed(**columns: list[str]) -> pl.DataFrame:
    n = len(next(iter(columns.values())))
    base = {f.name: [""] * n for f in FIELDS} | columns
    return typed_frame(pl.DataFrame(base), FIELDS, -6.0)


def test_types_follow_the_field_metadata() -> None:
    out = _typed(Key=["k"], Orders=["42"], Value=["49.95"], OptIn=["True"], When=["6/23/2024 12:00:00 AM"])
    assert out.schema == frame_schema(FIELDS)
    row = out.row(0, named=True)
    assert row["Orders"] == 42
    assert str(row["Value"]) == "49.95"
    assert row["OptIn"] is True
    assert row["When"] == dt.datetime(2024, 6, 23, 6, 0, tzinfo=UTC)  # server midnight = 06:00 UTC
    assert row[PARSE_ERRORS] is None


def test_server_time_converts_to_utc_across_day_boundaries() -> None:
    out = _typed(When=["10/1/2026 6:00:00 PM", "10/1/2026 5:59:59 PM", "12/31/2026 11:30:00 PM", "3/8/2026 2:30:00 AM"])
    assert out["When"].to_list() == [
        dt.datetime(2026, 10, 2, 0, 0, tzinfo=UTC),      # 6 PM server = next UTC day
        dt.datetime(2026, 10, 1, 23, 59, 59, tzinfo=UTC),
        dt.datetime(2027, 1, 1, 5, 30, tzinfo=UTC),      # across a year end
        dt.datetime(2026, 3, 8, 8, 30, tzinfo=UTC),      # US DST switch day: still a fixed -6 h
    ]


def test_empty_strings_are_null_and_text_is_kept_verbatim() -> None:
    out = _typed(Key=["k"], Email=["  Ana@Example.COM "])
    row = out.row(0, named=True)
    assert row["Email"] == "  Ana@Example.COM "  # trimming is the clean layer's decision
    assert row["Orders"] is None and row["Value"] is None and row["OptIn"] is None and row["When"] is None
    assert row[PARSE_ERRORS] is None


def test_values_that_do_not_parse_are_named_not_raised() -> None:
    out = _typed(Orders=["4.5"], OptIn=["Yes"], When=["13/45/2026 99:00:00 XM"], Value=["abc"])
    errors = out[PARSE_ERRORS][0]
    for expected in ("Orders: '4.5' is not a valid Number", "OptIn: 'Yes' is not a valid Boolean",
                     "When: '13/45/2026 99:00:00 XM' is not a valid Date", "Value: 'abc' is not a valid Decimal"):
        assert expected in errors
    assert out.select(["Orders", "OptIn", "When", "Value"]).row(0) == (None, None, None, None)


def test_booleans_tolerate_case_and_stray_whitespace() -> None:
    out = _typed(OptIn=["True", " false", "TRUE ", "1", "0"])
    assert out["OptIn"].to_list() == [True, False, True, True, False]


def test_the_cached_conversion_follows_the_offset_and_the_fields() -> None:
    """`typed_frame` builds its expressions once per (fields, offset): a different offset or field list
    must not reuse another's."""
    when = FieldSpec(name="When", type="Date")
    page = pl.DataFrame({"When": ["6/23/2024 12:00:00 AM"]})
    assert typed_frame(page, (when,), -6.0)["When"][0] == dt.datetime(2024, 6, 23, 6, 0, tzinfo=UTC)
    assert typed_frame(page, (when,), 2.0)["When"][0] == dt.datetime(2024, 6, 22, 22, 0, tzinfo=UTC)
    as_text = typed_frame(page, (FieldSpec(name="When", type="Text"),), -6.0)
    assert as_text["When"][0] == "6/23/2024 12:00:00 AM" and as_text[PARSE_ERRORS][0] is None


def test_the_utc_range_bounds_are_exact() -> None:
    """9999-12-31 23:59:59 UTC is the last value Python holds: it parses; one second later is an error."""
    out = _typed(When=["12/31/9999 5:59:59 PM", "12/31/9999 6:00:00 PM", "1/1/0001 12:00:00 AM"])
    assert out["When"].to_list()[:2] == [dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), None]
    assert out[PARSE_ERRORS].to_list()[:2] == [None, "When: '12/31/9999 6:00:00 PM' is not a valid Date"]
    assert out["When"][2] == dt.datetime(1, 1, 1, 6, 0, tzinfo=UTC)

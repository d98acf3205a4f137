"""The pandera contracts: each rule fails on the value that breaks it, quarantine splits rows."""

import datetime as dt

import polars as pl
import pytest
from pandera.errors import SchemaErrors

from sfmc_assets.lib.config import load_config
from sfmc_assets.lib.marketing_cloud.types import typed_frame
from sfmc_assets.lib.schemas import contract
from sfmc_assets.lib.transforms import clean
from sfmc_assets.lib.validation import REJECTION_REASONS, Gate, gate_batches, repeated_values, validate

UTC = dt.timezone.utc
CONFIG = load_config()
CONTACTS = CONFIG.data_extension("contacts")
START = dt.datetime(2026, 10, 2, tzinfo=UTC)
END = START + dt.timedelta(days=1)
CONTRACT = contract(CONTACTS, CONTACTS.fields, (START, END))


def frame(n: int = 4, **overrides: list[str]) -> pl.DataFrame:
    base = {
        "SubscriberKey": [f"S{i}" for i in range(n)], "EmailAddress": [f"c{i}@example.com" for i in range(n)],
        "FirstName": ["A"] * n, "LastName": ["B"] * n, "CustomerStage": ["New"] * n, "OptIn": ["True"] * n,
        "TotalOrders": ["1"] * n, "LifetimeValue": ["5.00"] * n, "LastOrderDate": [""] * n,
        "Locale": [""] * n, "MobilePhone": [""] * n, "ModifiedDate": ["10/2/2026 1:00:00 AM"] * n,
    }
    raw = typed_frame(pl.DataFrame(base | overrides), CONTACTS.fields, -6.0)
    return clean(raw, CONTACTS, END).frame


def test_clean_partition_passes() -> None:
    gate = validate(frame(), CONTRACT)
    assert gate.within(0.0) and gate.failing_rows == 0 and gate.valid.height == 4


@pytest.mark.parametrize(
    ("overrides", "rule", "value"),
    [
        ({"EmailAddress": ["not-an-email", "b@x.io", "c@x.io", "d@x.io"]}, "email: str_matches", "n***"),
        ({"CustomerStage": ["VIP", "New", "New", "New"]}, "lifecycle_stage: isin", "VIP"),
        ({"TotalOrders": ["-1", "1", "1", "1"]}, "total_orders: greater_than_or_equal_to(0)", "-1"),
        ({"ModifiedDate": ["10/3/2026 6:00:00 PM", *["10/2/2026 1:00:00 AM"] * 3]},
         "modified_at: in_range(2026-10-02 00:00:00+00:00, 2026-10-03", "2026-10-04"),
        ({"OptIn": ["Yes", "True", "True", "True"]}, "_parse_errors: values_parse", "OptIn: 'Yes'"),
        ({"EmailAddress": ["", "b@x.io", "c@x.io", "d@x.io"]}, "email: not_nullable", None),
    ],
)
def test_each_rule_names_the_failing_value(overrides: dict[str, list[str]], rule: str, value: str | None) -> None:
    gate = validate(frame(**overrides), CONTRACT)
    assert not gate.within(0.0)
    assert gate.failing_rows == 1 and gate.valid.height == 3
    assert any(r.startswith(rule) for r in gate.failures_by_rule()), gate.failures_by_rule()
    sample = gate.sample()
    if value is not None:
        assert any(value in (v or "") for v in sample["value"].to_list()), sample
    assert gate.quarantined[REJECTION_REASONS][0].startswith(rule.split(":")[0])


def test_duplicate_keys_with_conflicting_values_fail_uniqueness() -> None:
    df = frame(SubscriberKey=["S0", "S0", "S2", "S3"], CustomerStage=["New", "Loyal", "New", "New"])
    gate = validate(df, CONTRACT)
    assert "contact_key: field_uniqueness" in gate.failures_by_rule()
    assert gate.failing_rows == 2


def test_tolerance_lets_valid_rows_through_and_quarantines_the_rest() -> None:
    gate = validate(frame(EmailAddress=["bad", "b@x.io", "c@x.io", "d@x.io"]), CONTRACT)
    assert not gate.within(0.0)
    assert gate.within(0.25) and not gate.within(0.2)
    assert gate.valid["contact_key"].to_list() == ["S1", "S2", "S3"]


def test_missing_column_always_blocks() -> None:
    gate = validate(frame().drop("opt_in"), CONTRACT)
    assert gate.blocking_schema_errors and not gate.within(1.0)


def test_sample_masks_personal_columns() -> None:
    gate = validate(frame(EmailAddress=["secret.person@nowhere", "b@x.io", "c@x.io", "d@x.io"]), CONTRACT)
    assert "secret.person" not in str(gate.sample())


def _pandera_cases(df: pl.DataFrame) -> pl.DataFrame:
    try:
        CONTRACT.validate(df, lazy=True)
    except SchemaErrors as err:
        return err.failure_cases.with_columns(pl.col("failure_case").cast(pl.String))
    raise AssertionError("expected failures")


MANY_FAILURES = {
    "SubscriberKey": ["S0", "S0", "S2", "", "S4", "S4", "S6", "S7"],
    "EmailAddress": ["bad", "", "c@x.io", "d@x.io", "x", "e@x.io", "f@x.io", "g@x.io"],
    "CustomerStage": ["VIP", "New", "New", "New", "Loyal", "New", "x", "New"],
    "TotalOrders": ["-1", "1", "1", "1", "-5", "1", "1", "1"],
    "OptIn": ["Yes"] + ["True"] * 7,
}


@pytest.mark.parametrize("broken", [lambda df: df, lambda df: df.drop("opt_in").with_columns(
    pl.col("total_orders").cast(pl.String))], ids=["row_failures", "schema_failures"])
def test_batches_report_exactly_what_one_pandera_run_reports(broken) -> None:
    """The gate runs pandera per batch and flags repeated keys itself: same cases, same order, same rows."""
    df = broken(frame(8, **MANY_FAILURES))
    whole = validate(df, CONTRACT)
    assert whole.failure_cases.equals(_pandera_cases(df))
    gate = Gate(CONTRACT, repeated_values(df, CONTRACT))
    valid: list[pl.DataFrame] = []
    quarantined: list[pl.DataFrame] = []
    summary = gate_batches((df.slice(i, 3) for i in range(0, df.height, 3)), gate, valid.append, quarantined.append)
    assert summary.failure_cases.equals(whole.failure_cases)
    assert (summary.failing_rows, summary.rows_checked, summary.blocking_schema_errors) == (
        whole.failing_rows, whole.rows_checked, whole.blocking_schema_errors)
    assert pl.concat(valid).equals(whole.valid) and pl.concat(quarantined).equals(whole.quarantined)


def test_a_gate_needs_the_repeated_values_of_unique_columns() -> None:
    with pytest.raises(ValueError, match="contact_key"):
        Gate(CONTRACT, {})


def test_a_composite_key_is_unique_as_a_whole() -> None:
    """(subscriber, channel) repeats are flagged on every row holding them, in any batch; the same
    subscriber on two channels is not a repeat."""
    from sfmc_assets.lib.config import DataExtensionConfig
    from sfmc_assets.lib.marketing_cloud.fields import FieldSpec

    fields = (FieldSpec(name="SubscriberKey", type="Text", length=254, is_primary_key=True, is_nullable=False),
              FieldSpec(name="Channel", type="Text", length=20, is_primary_key=True, is_nullable=False),
              FieldSpec(name="OptedIn", type="Boolean"))
    de = DataExtensionConfig(name="preferences", external_key="P", sync="full", fields=fields)
    schema = contract(de, fields)
    rows = pl.DataFrame({"subscriber_key": ["S1", "S1", "S2", "S1"], "channel": ["Email", "SMS", "Email", "Email"],
                         "opted_in": [True, None, False, False], "_parse_errors": [None] * 4,
                         "partition_date": [dt.date(2026, 10, 2)] * 4}, schema_overrides={"_parse_errors": pl.String})
    whole = validate(rows, schema)
    assert whole.failures_by_rule() == {"subscriber_key, channel: multiple_fields_uniqueness": 2}
    assert whole.quarantined.select("subscriber_key", "channel").rows() == [("S1", "Email")] * 2
    gate = Gate(schema, repeated_values(rows, schema))
    summary = gate_batches((rows.slice(i, 1) for i in range(4)), gate, lambda _: None, lambda _: None)
    assert summary.failure_cases.equals(whole.failure_cases)
    assert "S***, E***" not in str(summary.sample(10, personal=["channel"]))  # masked as a whole when personal
    assert str(summary.sample(10, personal=["channel"])["value"].to_list()) == "['S***', 'S***']"

"""The clean step on plain DataFrames: canonical names and values, normalisation, de-duplication."""

import datetime as dt

import polars as pl
import pytest

from sfmc_assets.lib.config import load_config
from sfmc_assets.lib.marketing_cloud.types import typed_frame
from sfmc_assets.lib.transforms import PARTITION_DATE, batches, clean, fields_of, plan_clean, to_clean

UTC = dt.timezone.utc
CONFIG = load_config()
CONTACTS = CONFIG.data_extension("contacts")
CAMPAIGNS = CONFIG.data_extension("campaigns")
END = dt.datetime(2026, 10, 3, tzinfo=UTC)


def contacts_raw(**overrides: list[str]) -> pl.DataFrame:
    base = {
        "SubscriberKey": ["S1", "S2"], "EmailAddress": [" Ana.Muller@Example.COM ", "jose@example.org"],
        "FirstName": ["Zoë", ""], "LastName": ["Müller", ""], "CustomerStage": ["New", " returning "],
        "OptIn": ["True", "False"], "TotalOrders": ["1", "3"], "LifetimeValue": ["19.90", ""],
        "LastOrderDate": ["9/2/2026 12:00:00 AM", ""], "Locale": ["de-DE", ""], "MobilePhone": ["", ""],
        "ModifiedDate": ["10/2/2026 1:00:00 AM", "10/2/2026 3:00:00 AM"],
    }
    return typed_frame(pl.DataFrame(base | overrides), CONTACTS.fields, -6.0)


def test_contacts_become_canonical() -> None:
    out = clean(contacts_raw(), CONTACTS, END).frame.sort("contact_key")
    assert out["contact_key"].to_list() == ["S1", "S2"]
    assert out["email"].to_list() == ["ana.muller@example.com", "jose@example.org"]
    assert out["lifecycle_stage"].to_list() == ["new", "repeat"]  # value mapping is trimmed, case-insensitive
    assert out["first_name"].to_list() == ["Zoë", None]
    assert out["opt_in"].to_list() == [True, False]
    assert out[PARTITION_DATE].to_list() == [dt.date(2026, 10, 2)] * 2
    # last order 2026-09-02 06:00 UTC, as of 2026-10-03 00:00 UTC -> 30 full days
    assert out["days_since_last_order"].to_list() == [30, None]


def test_unmapped_value_is_kept_for_the_gate_to_name() -> None:
    out = clean(contacts_raw(CustomerStage=["VIP", "Loyal"]), CONTACTS, END).frame.sort("contact_key")
    assert out["lifecycle_stage"].to_list() == ["VIP", "loyal"]


def test_duplicates_keep_the_latest_delta_value() -> None:
    raw = contacts_raw(
        SubscriberKey=["S1", "S1"], CustomerStage=["New", "Returning"],
        ModifiedDate=["10/2/2026 1:00:00 AM", "10/2/2026 3:00:00 AM"],
    )
    result = clean(raw, CONTACTS, END)
    assert result.removed == 1
    assert result.frame["lifecycle_stage"].to_list() == ["repeat"]


def test_conflicting_rows_with_the_same_delta_are_kept_for_the_gate() -> None:
    raw = contacts_raw(SubscriberKey=["S1", "S1"], ModifiedDate=["10/2/2026 1:00:00 AM"] * 2)
    result = clean(raw, CONTACTS, END)
    assert result.removed == 0 and result.frame.height == 2


def test_exact_duplicates_collapse() -> None:
    raw = pl.concat([contacts_raw(), contacts_raw()])
    result = clean(raw, CONTACTS, END)
    assert (result.frame.height, result.removed) == (2, 2)


def test_engagement_actions_and_sentiment_map() -> None:
    raw = typed_frame(pl.DataFrame({
        "EngagementID": ["E1", "E2"], "SubscriberKey": ["S1", "S2"], "CampaignID": ["C1", "C1"],
        "CampaignName": ["Fall", "Fall"], "Channel": ["Email", "Email"], "EventName": ["Replied", "Clicked"],
        "ResponseSentiment": ["Negative", ""], "LinkURL": ["", "https://x.example/a"],
        "EventDate": ["10/1/2026 6:00:00 PM", "10/2/2026 5:59:59 PM"],
    }), CAMPAIGNS.fields, -6.0)
    out = clean(raw, CAMPAIGNS, END).frame.sort("engagement_id")
    assert out["action"].to_list() == ["response", "click"]
    assert out["sentiment"].to_list() == ["negative", None]
    assert out[PARTITION_DATE].to_list() == [dt.date(2026, 10, 2), dt.date(2026, 10, 2)]


def test_another_tenant_is_a_configuration_change() -> None:
    """A tenant with other column names and values needs only another mapping."""
    other = CONTACTS.model_copy(update={
        "columns": {**CONTACTS.columns, "lifecycle_stage": "Tier"},
        "values": {"lifecycle_stage": {"Prospect": "new", "Gold": "loyal"}},
        "fields": None,
    })
    raw = contacts_raw().rename({"CustomerStage": "Tier"}).with_columns(pl.Series("Tier", ["Gold", "prospect"]))
    out = clean(raw, other, END).frame.sort("contact_key")
    assert out["lifecycle_stage"].to_list() == ["loyal", "new"]


@pytest.mark.parametrize("role", ["phone", "locale"])
def test_unmapped_optional_roles_are_typed_nulls(role: str) -> None:
    de = CONTACTS.model_copy(update={"columns": {k: v for k, v in CONTACTS.columns.items() if k != role},
                                     "fields": None})
    source = CONTACTS.columns[role]
    raw = contacts_raw().drop(source)  # (a source column named like the role would need a `rename`)
    out = to_clean(raw.lazy(), de, fields_of(raw.schema)).collect()
    assert out[role].null_count() == out.height and out.schema[role] == pl.String


def test_streamed_plan_matches_the_collected_clean() -> None:
    """Batches of the lazy plan add up to `clean`: superseded rows and exact duplicates dropped, ties kept
    and named as conflicting keys."""
    raw = pl.concat([
        contacts_raw(),
        contacts_raw(SubscriberKey=["S3", "S3"], ModifiedDate=["10/2/2026 1:00:00 AM"] * 2,
                     CustomerStage=["New", "Loyal"]),
        contacts_raw(SubscriberKey=["S1", ""], ModifiedDate=["10/2/2026 5:00:00 AM", "10/2/2026 5:00:00 AM"]),
        contacts_raw(),
    ])
    plan = plan_clean(raw, CONTACTS, END)
    streamed = pl.concat(list(batches(plan.frame, 2)))
    collected = clean(raw, CONTACTS, END)
    assert streamed.equals(collected.frame) and plan.removed == collected.removed == 3
    assert plan.conflicting_keys["contact_key"].to_list() == ["S3"]
    assert streamed.group_by("contact_key").len().filter(pl.col("len") > 1)["contact_key"].to_list() == ["S3"]


def test_an_empty_partition_streams_one_empty_batch() -> None:
    plan = plan_clean(contacts_raw().clear(), CONTACTS, END)
    (batch,) = batches(plan.frame, 10)
    assert batch.is_empty() and batch.columns == clean(contacts_raw(), CONTACTS, END).frame.columns

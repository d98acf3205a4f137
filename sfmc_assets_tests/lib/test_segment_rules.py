"""Segment rules on plain DataFrames: consent, windows summed from daily totals, the tables' columns."""

import datetime as dt
import random

import polars as pl

from sfmc_assets.lib.config import SegmentRules
from sfmc_assets.lib.segments import (
    TABLE_SCHEMAS,
    activity_totals,
    contact_features,
    engagement_totals,
    features_from_totals,
    latest_contacts,
    memberships,
    sum_totals,
)

UTC = dt.timezone.utc
DAY = dt.date(2026, 10, 20)
RULES = SegmentRules()


def _contacts() -> pl.DataFrame:
    return pl.DataFrame({
        "contact_key": ["YES", "NO", "UNKNOWN", "UNKNOWN_BAD_EMAIL"],
        "email": ["a@example.com", "b@example.com", "c@example.com", "not-an-email"],
        "lifecycle_stage": ["new", "new", "new", "new"],
        "opt_in": [True, False, None, None],
        "total_orders": [1, 1, 1, 1],
        "lifetime_value": pl.Series([10, 10, 10, 10]).cast(pl.Decimal(18, 2)),
        "last_order_at": [dt.datetime(2026, 10, 1, tzinfo=UTC)] * 4,
        "modified_at": [dt.datetime(2026, 10, 2, tzinfo=UTC)] * 4,
    })


def _events(n: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = random.Random(seed)
    start = dt.datetime(2026, 9, 10, tzinfo=UTC)
    when = [start + dt.timedelta(minutes=rng.randrange(60 * 24 * 45)) for _ in range(n)]
    keys = [rng.choice(["YES", "NO", "UNKNOWN", "OTHER"]) for _ in range(n)]
    ts = pl.Datetime("us", "UTC")
    engagement = pl.DataFrame({
        "contact_key": keys, "event_at": when,
        "action": [rng.choice(["send", "open", "click", "response"]) for _ in range(n)],
        "sentiment": [rng.choice(["positive", "negative", None]) for _ in range(n)],
    }, schema={"contact_key": pl.String, "event_at": ts, "action": pl.String, "sentiment": pl.String})
    activities = pl.DataFrame({
        "contact_key": keys, "activity_at": when,
        "activity_kind": [rng.choice(["page_view", "form_submission", "purchase"]) for _ in range(n)],
    }, schema={"contact_key": pl.String, "activity_at": ts, "activity_kind": pl.String})
    return engagement, activities


def test_an_empty_opt_in_is_consent_unknown_not_a_refusal() -> None:
    engagement, activities = _events(0, 1)
    features = contact_features(_contacts().lazy(), engagement.lazy(), activities.lazy(), DAY, RULES)
    reasons = dict(features.select("contact_key", "exclusion_reason").iter_rows())
    assert reasons == {"YES": None, "NO": "not opted in", "UNKNOWN": "consent unknown",
                       "UNKNOWN_BAD_EMAIL": "consent unknown"}
    assert features.filter(pl.col("opt_in").is_null()).height == 2  # kept, with opt_in empty
    assert features.filter(pl.col("eligible"))["contact_key"].to_list() == ["YES"]
    result = memberships(features, RULES)
    assert result.members.filter(pl.col("segment") == "welcome_offer")["contact_key"].to_list() == ["YES"]
    assert result.excluded["welcome_offer: consent unknown"] == 2
    assert result.excluded["welcome_offer: not opted in"] == 1


def _by_day(frame: pl.DataFrame, column: str) -> dict[dt.date, pl.DataFrame]:
    return {d: g for (d,), g in frame.with_columns(pl.col(column).dt.date().alias("_d")).group_by("_d")}


def test_windows_summed_from_daily_totals_equal_windows_computed_at_once() -> None:
    engagement, activities = _events(3000, 7)
    expected = contact_features(_contacts().lazy(), engagement.lazy(), activities.lazy(), DAY, RULES)
    eng_days, act_days = _by_day(engagement, "event_at"), _by_day(activities, "activity_at")
    eng = sum_totals([engagement_totals(eng_days[DAY - dt.timedelta(days=i)].drop("_d").lazy()).collect()
                      for i in range(RULES.engagement_window_days)], "last_engagement_at")
    act = sum_totals([activity_totals(act_days[DAY - dt.timedelta(days=i)].drop("_d").lazy()).collect()
                      for i in range(RULES.activity_window_days)], "last_activity_at")
    got = features_from_totals(latest_contacts(_contacts().lazy(), DAY), eng, act, DAY)
    assert got.equals(expected)
    assert got["clicks"].sum() > 0 and got["page_views"].sum() > 0  # the windows are not empty


def test_a_day_without_contacts_has_features_and_memberships_with_no_rows() -> None:
    empty = _contacts().clear().lazy()
    engagement, activities = _events(50, 3)
    features = contact_features(empty, engagement.lazy(), activities.lazy(), DAY, RULES)
    assert features.height == 0 and "exclusion_reason" in features.columns
    result = memberships(features, RULES)
    assert result.members.height == 0 and result.excluded == {}


def test_the_declared_table_schemas_are_those_of_a_computed_day() -> None:
    """The declared schemas (the catalog's) are those of a day the rules compute."""
    engagement, activities = _events(50, 3)
    features = contact_features(_contacts().lazy(), engagement.lazy(), activities.lazy(), DAY, RULES)
    members = memberships(features, RULES).members
    assert features.height and members.height
    assert {"contact_features": features.schema, "segment_membership": members.schema} == TABLE_SCHEMAS

"""Segment rules for the three use cases, as pure Polars over the clean tables.

`contact_features(D)` describes every contact as known at the end of UTC day D; `memberships(D)` says
who belongs to which audience that day and why. The rules (README, "Segments") are data in
`SegmentRules`, so a marketer's change of a window or threshold is a configuration change.
"""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from sfmc_assets.lib.canonical import MONEY, UTC_DATETIME
from sfmc_assets.lib.config import SegmentRules
from sfmc_assets.lib.schemas import EMAIL_PATTERN
from sfmc_assets.lib.windows import day_end, window_start

UTC = dt.timezone.utc


SEGMENTS = ("welcome_offer", "loyalty_reward", "reengagement", "promotion", "service_follow_up",
            "browse_reminder", "form_follow_up")

FEATURE_COUNTS = ("sends", "opens", "clicks", "positive_responses", "negative_responses",
                  "page_views", "form_submissions", "purchases")


def latest_contacts(contacts: pl.LazyFrame, as_of: dt.date) -> pl.LazyFrame:
    """One row per contact: its latest clean row modified before the end of `as_of`."""
    return (
        contacts.filter(pl.col("modified_at") < day_end(as_of))
        .sort("modified_at", "contact_key")
        .unique("contact_key", keep="last", maintain_order=False)
    )


def engagement_totals(engagement: pl.LazyFrame) -> pl.LazyFrame:
    """Per contact: the engagement counts and the last engagement of `engagement` (no time filter)."""
    action, sentiment = pl.col("action"), pl.col("sentiment")
    return engagement.group_by("contact_key").agg(
        (action == "send").sum().alias("sends"),
        (action == "open").sum().alias("opens"),
        (action == "click").sum().alias("clicks"),
        ((action == "response") & (sentiment == "positive")).sum().alias("positive_responses"),
        ((action == "response") & (sentiment == "negative")).sum().alias("negative_responses"),
        pl.col("event_at").max().alias("last_engagement_at"),
    )


def activity_totals(activities: pl.LazyFrame) -> pl.LazyFrame:
    """Per contact: the activity counts and the last activity of `activities` (no time filter)."""
    kind = pl.col("activity_kind")
    return activities.group_by("contact_key").agg(
        (kind == "page_view").sum().alias("page_views"),
        (kind == "form_submission").sum().alias("form_submissions"),
        (kind == "purchase").sum().alias("purchases"),
        pl.col("activity_at").max().alias("last_activity_at"),
    )


def sum_totals(parts: Sequence[pl.DataFrame], last: str) -> pl.LazyFrame:
    """Totals over several days from each day's totals (counts add up, the last time is the latest).

    A window is the sum of its days, so each day's events are aggregated once and every window that
    contains the day reuses that aggregate.
    """
    frames = [p for p in parts if p.height]
    if not frames:
        return parts[0].lazy() if parts else pl.LazyFrame(schema={"contact_key": pl.String})
    counts = [c for c in frames[0].columns if c not in ("contact_key", last)]
    return pl.concat(frames, how="vertical_relaxed").lazy().group_by("contact_key").agg(
        *(pl.col(c).sum() for c in counts), pl.col(last).max())


def engagement_counts(engagement: pl.LazyFrame, as_of: dt.date, rules: SegmentRules) -> pl.LazyFrame:
    start, end = window_start(as_of, rules.engagement_window_days), day_end(as_of)
    return engagement_totals(engagement.filter((pl.col("event_at") >= start) & (pl.col("event_at") < end)))


def activity_counts(activities: pl.LazyFrame, as_of: dt.date, rules: SegmentRules) -> pl.LazyFrame:
    start, end = window_start(as_of, rules.activity_window_days), day_end(as_of)
    return activity_totals(activities.filter((pl.col("activity_at") >= start) & (pl.col("activity_at") < end)))


def contact_features(
    contacts: pl.LazyFrame, engagement: pl.LazyFrame, activities: pl.LazyFrame, as_of: dt.date,
    rules: SegmentRules,
) -> pl.DataFrame:
    """Every contact known at the end of `as_of`, with its window counts (0 when nothing happened)."""
    return features_from_totals(latest_contacts(contacts, as_of), engagement_counts(engagement, as_of, rules),
                                activity_counts(activities, as_of, rules), as_of)


#: The contact columns the features use (the contact state holds at least these).
CONTACT_COLUMNS = {"contact_key": pl.String, "email": pl.String, "lifecycle_stage": pl.String,
                   "opt_in": pl.Boolean, "total_orders": pl.Int64, "lifetime_value": MONEY,
                   "last_order_at": UTC_DATETIME, "modified_at": UTC_DATETIME}


def _with_contact_columns(contacts: pl.LazyFrame) -> pl.LazyFrame:
    """`contacts` with every column of CONTACT_COLUMNS (an unmapped optional role is all null)."""
    present = contacts.collect_schema().names()
    return contacts.with_columns(pl.lit(None, dtype=t).alias(c) for c, t in CONTACT_COLUMNS.items()
                                 if c not in present)


def features_from_totals(
    contacts: pl.LazyFrame, engagement: pl.LazyFrame, activities: pl.LazyFrame, as_of: dt.date,
) -> pl.DataFrame:
    """Features from the contacts as known at the end of `as_of` and the windows' per-contact totals."""
    base = _with_contact_columns(contacts).select(
        "contact_key", "email", "lifecycle_stage", "opt_in", "total_orders", "lifetime_value",
        (pl.lit(day_end(as_of)) - pl.col("last_order_at")).dt.total_days().cast(pl.Int64)
        .alias("days_since_last_order"),
        "modified_at",
    )
    valid_email = pl.col("email").str.contains(EMAIL_PATTERN).fill_null(False)
    joined = (
        base.join(engagement, on="contact_key", how="left")
        .join(activities, on="contact_key", how="left")
        .with_columns(pl.col(c).fill_null(0).cast(pl.Int64) for c in FEATURE_COUNTS)
        .with_columns(
            pl.lit(as_of).alias("as_of_date"),
            (pl.col("opt_in").fill_null(False) & valid_email).alias("eligible"),
            # Marketing Cloud allows an empty Boolean: no recorded consent is not a refusal, and is
            # counted apart so the size of that gap shows.
            pl.when(pl.col("opt_in").is_null()).then(pl.lit("consent unknown"))
            .when(~pl.col("opt_in")).then(pl.lit("not opted in"))
            .when(~valid_email).then(pl.lit("invalid email"))
            .otherwise(None).alias("exclusion_reason"),
        )
    )
    return joined.select(
        "as_of_date", "contact_key", "email", "lifecycle_stage", "opt_in", "eligible", "exclusion_reason",
        "total_orders", "lifetime_value", "days_since_last_order", *FEATURE_COUNTS,
        "last_engagement_at", "last_activity_at", "modified_at",
    ).sort("contact_key").collect()


def _rule(features: pl.DataFrame, segment: str, condition: pl.Expr, reason: pl.Expr) -> pl.DataFrame:
    return features.filter(condition).select(
        "as_of_date", pl.lit(segment).alias("segment"), "contact_key", reason.alias("reason"),
        *FEATURE_COUNTS,
    )


def candidates(features: pl.DataFrame, rules: SegmentRules) -> pl.DataFrame:
    """Every (segment, contact) the rules select, before eligibility (opt-in, valid e-mail)."""
    stage = pl.col("lifecycle_stage")
    e, a = rules.engagement_window_days, rules.activity_window_days
    negative = pl.col("negative_responses") > 0
    parts = [
        _rule(features, "welcome_offer", stage.is_in(rules.welcome_stages),
              pl.format("lifecycle stage is {}", stage)),
        _rule(features, "loyalty_reward", stage.is_in(rules.loyalty_stages),
              pl.format("lifecycle stage is {}", stage)),
        _rule(features, "reengagement", stage.is_in(rules.reengagement_stages),
              pl.format("lifecycle stage is {}", stage)),
        _rule(features, "promotion", ((pl.col("clicks") > 0) | (pl.col("positive_responses") > 0)) & ~negative,
              pl.format("{} click(s), {} positive response(s) in {} days, no negative response",
                        "clicks", "positive_responses", pl.lit(e))),
        _rule(features, "service_follow_up", negative,
              pl.format("{} negative response(s) in {} days", "negative_responses", pl.lit(e))),
        _rule(features, "browse_reminder", (pl.col("page_views") > 0) & (pl.col("purchases") == 0),
              pl.format("{} page view(s) and no purchase in {} days", "page_views", pl.lit(a))),
        _rule(features, "form_follow_up", pl.col("form_submissions") > 0,
              pl.format("{} form submission(s) in {} days", "form_submissions", pl.lit(a))),
    ]
    return pl.concat(parts)


@dataclass(frozen=True)
class Membership:
    members: pl.DataFrame
    excluded: dict[str, int]  # "segment: reason" -> contacts the rules selected but eligibility removed


def memberships(features: pl.DataFrame, rules: SegmentRules) -> Membership:
    """Members (eligible contacts only) and the count of excluded candidates per segment and reason."""
    selected = candidates(features, rules).join(
        features.select("contact_key", "eligible", "exclusion_reason"), on="contact_key"
    )
    members = selected.filter(pl.col("eligible")).drop("eligible", "exclusion_reason").sort("segment", "contact_key")
    excluded = (
        selected.filter(~pl.col("eligible")).group_by("segment", "exclusion_reason").len()
        .sort("segment", "exclusion_reason")
    )
    return Membership(
        members,
        {f"{r['segment']}: {r['exclusion_reason']}": r["len"] for r in excluded.iter_rows(named=True)},
    )


_COUNTS = {c: pl.Int64 for c in FEATURE_COUNTS}
#: The columns every day of the two tables holds: the catalog shows them before any run, and a test holds
#: the rules to them. Declared, not derived by running the rules on empty frames: Polars run while the
#: definitions load starts its thread pool in the step executor's fork server, and the step processes
#: forked from it deadlock.
TABLE_SCHEMAS = {
    "contact_features": pl.Schema({
        "as_of_date": pl.Date, "contact_key": pl.String, "email": pl.String, "lifecycle_stage": pl.String,
        "opt_in": pl.Boolean, "eligible": pl.Boolean, "exclusion_reason": pl.String, "total_orders": pl.Int64,
        "lifetime_value": MONEY, "days_since_last_order": pl.Int64, **_COUNTS,
        "last_engagement_at": UTC_DATETIME, "last_activity_at": UTC_DATETIME, "modified_at": UTC_DATETIME,
    }),
    "segment_membership": pl.Schema({
        "as_of_date": pl.Date, "segment": pl.String, "contact_key": pl.String, "reason": pl.String, **_COUNTS,
    }),
}

"""pandera contracts of the clean tables: what a partition must satisfy before anything is published.

One `pandera.polars` model per canonical kind. The partition window (delta values inside the partition's
UTC day) depends on the partition, so `contract(kind, window)` adds it to the model's schema at run time.
Datetime columns use `Annotated[pl.Datetime, "us", "UTC"]` (pandera 0.35 + polars 2 reject
`dtype_kwargs`, notes G6).
"""

import datetime as dt
from typing import Annotated

import pandera.polars as pa
import polars as pl

from sfmc_assets.lib.canonical import ACTIVITY_KINDS, ENGAGEMENT_ACTIONS, LIFECYCLE_STAGES, SENTIMENTS, Kind

#: Deliberately simple: one @, no spaces, a dot in the domain. Deliverability is the ESP's job.
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"

UtcDatetime = Annotated[pl.Datetime, "us", "UTC"]
Money = Annotated[pl.Decimal, 18, 2]


class _Clean(pa.DataFrameModel):
    """Rules every clean table shares."""

    parse_errors: str | None = pa.Field(
        nullable=True, alias="_parse_errors",
        description="Values that did not parse as their Marketing Cloud type.",
    )
    partition_date: dt.date = pa.Field(description="UTC day of the delta value.")

    # Named like the check: pandera 0.35 pops `name=` when the first model builds its schema, and the
    # other models fall back to the method's name, so both must read `values_parse`.
    @pa.check("_parse_errors", name="values_parse")
    def values_parse(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col(data.key).is_null())

    class Config:
        strict = True
        coerce = False


class ContactsClean(_Clean):
    """One row per contact changed that day."""

    contact_key: str = pa.Field(unique=True, str_length={"min_value": 1, "max_value": 254})
    email: str = pa.Field(str_matches=EMAIL_PATTERN, description="Trimmed, lower-cased e-mail address.")
    first_name: str | None = pa.Field(nullable=True)
    last_name: str | None = pa.Field(nullable=True)
    lifecycle_stage: str = pa.Field(isin=list(LIFECYCLE_STAGES))
    opt_in: bool
    total_orders: int | None = pa.Field(nullable=True, ge=0)
    lifetime_value: Money | None = pa.Field(nullable=True, ge=0)
    last_order_at: UtcDatetime | None = pa.Field(nullable=True)
    locale: str | None = pa.Field(nullable=True)
    phone: str | None = pa.Field(nullable=True)
    modified_at: UtcDatetime
    days_since_last_order: int | None = pa.Field(nullable=True, ge=0)


class EngagementClean(_Clean):
    """One row per campaign interaction."""

    engagement_id: str = pa.Field(unique=True, str_length={"min_value": 1})
    contact_key: str = pa.Field(str_length={"min_value": 1})
    campaign_id: str = pa.Field(str_length={"min_value": 1})
    campaign_name: str | None = pa.Field(nullable=True)
    channel: str | None = pa.Field(nullable=True)
    action: str = pa.Field(isin=list(ENGAGEMENT_ACTIONS))
    sentiment: str | None = pa.Field(nullable=True, isin=list(SENTIMENTS))
    link_url: str | None = pa.Field(nullable=True)
    event_at: UtcDatetime


class ActivitiesClean(_Clean):
    """One row per behavioural event."""

    activity_id: str = pa.Field(unique=True, str_length={"min_value": 1})
    contact_key: str = pa.Field(str_length={"min_value": 1})
    activity_kind: str = pa.Field(isin=list(ACTIVITY_KINDS))
    page_url: str | None = pa.Field(nullable=True)
    form_name: str | None = pa.Field(nullable=True)
    order_id: str | None = pa.Field(nullable=True)
    order_amount: Money | None = pa.Field(nullable=True, ge=0)
    activity_at: UtcDatetime


MODELS: dict[str, type[_Clean]] = {
    "contacts": ContactsClean,
    "engagement": EngagementClean,
    "activities": ActivitiesClean,
}


def contract(kind: Kind, window_start: dt.datetime, window_end: dt.datetime) -> pa.DataFrameSchema:
    """The kind's model plus the partition rule: every delta value inside `[window_start, window_end)`."""
    schema = MODELS[kind.name].to_schema()
    column = schema.columns[kind.time_role]
    # Reported as `in_range(start, end)`: the window itself says which partition was checked.
    in_window = pa.Check.in_range(window_start, window_end, include_min=True, include_max=False)
    return schema.update_column(kind.time_role, checks=[*column.checks, in_window])

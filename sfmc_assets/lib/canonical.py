"""The canonical kinds: overlays that map some of a data extension's columns onto the roles segments read.

Every Marketing Cloud tenant names its columns and values differently (Adobe's own source has "no
predefined mapping"). Any data extension is ingested as it is (generic); one that feeds the segment
tables also declares a *kind*, whose roles its columns are mapped onto (source values onto the roles'
enums). The clean table then holds the roles under their canonical names, next to the data extension's
other columns.

A role that must be *mapped* is `required`; whether it may be *empty* is Marketing Cloud's metadata's
call (or the configuration's `rules`), never the role's: what an empty value means is the role's
`when_empty`, and the segment rules follow it. Only the key and the time (delta) role are never empty.
"""

from dataclasses import dataclass

import polars as pl

UTC_DATETIME = pl.Datetime("us", "UTC")
MONEY = pl.Decimal(18, 2)

LIFECYCLE_STAGES = ("new", "repeat", "loyal", "inactive")
ENGAGEMENT_ACTIONS = ("send", "open", "click", "response", "unsubscribe", "bounce")
SENTIMENTS = ("positive", "negative", "neutral")
ACTIVITY_KINDS = ("page_view", "form_submission", "purchase", "email_open", "email_click")


@dataclass(frozen=True)
class Role:
    """One canonical column: its type, whether the source must provide it, and its allowed values."""

    name: str
    dtype: pl.DataType
    description: str
    required: bool = False  # the configuration must map it
    enum: tuple[str, ...] | None = None
    when_empty: str = ""  # what an empty value means downstream (documented, followed by the segments)
    ge: float | None = None  # lower bound of a number (counts and amounts are never negative)


@dataclass(frozen=True)
class Kind:
    """A family of data extensions with the same canonical shape (contacts, engagement, activities)."""

    name: str
    description: str
    key_role: str
    time_role: str
    roles: tuple[Role, ...]
    one_row_per_key: bool = False  # the key role alone is the primary key (contacts)

    def role(self, name: str) -> Role:
        for role in self.roles:
            if role.name == name:
                return role
        raise KeyError(f"kind {self.name!r} has no role {name!r}")

    @property
    def enum_roles(self) -> tuple[Role, ...]:
        return tuple(r for r in self.roles if r.enum is not None)


CONTACTS = Kind(
    name="contacts",
    description="One row per subscriber: identity, consent, lifecycle stage and purchase summary.",
    key_role="contact_key",
    time_role="modified_at",
    roles=(
        Role("contact_key", pl.String, "Marketing Cloud subscriber key: the contact's identity.", required=True),
        Role("email", pl.String, "E-mail address, trimmed and lower-cased.", required=True,
             when_empty="no e-mail address: kept, not eligible for audiences (reason `invalid email`)"),
        Role("first_name", pl.String, "Given name as entered (unicode kept)."),
        Role("last_name", pl.String, "Family name as entered (unicode kept)."),
        Role("lifecycle_stage", pl.String, "new, repeat, loyal or inactive: drives the lifecycle segments.",
             required=True, enum=LIFECYCLE_STAGES,
             when_empty="stage unknown: kept and published, in no lifecycle segment"),
        Role("opt_in", pl.Boolean, "Marketing consent: only opted-in contacts join audiences.", required=True,
             when_empty="consent unknown: kept and published, not eligible for audiences (reason "
             "`consent unknown`)"),
        Role("total_orders", pl.Int64, "Orders placed to date.", ge=0),
        Role("lifetime_value", MONEY, "Revenue to date, in the account currency.", ge=0),
        Role("last_order_at", UTC_DATETIME, "When the last order was placed (UTC)."),
        Role("locale", pl.String, "Language-region code, e.g. fr-FR."),
        Role("phone", pl.String, "Mobile phone as entered."),
        Role("modified_at", UTC_DATETIME, "When the row last changed in Marketing Cloud (UTC): the delta column.",
             required=True),
    ),
    one_row_per_key=True,
)

ENGAGEMENT = Kind(
    name="engagement",
    description="One row per campaign interaction: sends, opens, clicks, responses.",
    key_role="engagement_id",
    time_role="event_at",
    roles=(
        Role("engagement_id", pl.String, "Unique id of the interaction.", required=True),
        Role("contact_key", pl.String, "Subscriber key of the contact who interacted.", required=True,
             when_empty="no contact: kept, counted in no contact's features"),
        Role("campaign_id", pl.String, "Campaign identifier.", required=True),
        Role("campaign_name", pl.String, "Campaign name."),
        Role("channel", pl.String, "Channel of the send (email, sms)."),
        Role("action", pl.String, "send, open, click, response, unsubscribe or bounce.", required=True,
             enum=ENGAGEMENT_ACTIONS, when_empty="unknown action: kept, counted as none of the actions"),
        Role("sentiment", pl.String, "positive, negative or neutral, for responses.", enum=SENTIMENTS),
        Role("link_url", pl.String, "Clicked link, for clicks."),
        Role("event_at", UTC_DATETIME, "When the interaction happened (UTC): the delta column.", required=True),
    ),
)

ACTIVITIES = Kind(
    name="activities",
    description="One row per behavioural event: page views, form submissions, purchases, e-mail interactions.",
    key_role="activity_id",
    time_role="activity_at",
    roles=(
        Role("activity_id", pl.String, "Unique id of the activity.", required=True),
        Role("contact_key", pl.String, "Subscriber key of the contact.", required=True,
             when_empty="no contact: kept, counted in no contact's features"),
        Role("activity_kind", pl.String, "page_view, form_submission, purchase, email_open or email_click.",
             required=True, enum=ACTIVITY_KINDS, when_empty="unknown kind: kept, counted as none of the kinds"),
        Role("page_url", pl.String, "Visited page, for page views."),
        Role("form_name", pl.String, "Submitted form, for form submissions."),
        Role("order_id", pl.String, "Order id, for purchases."),
        Role("order_amount", MONEY, "Order amount, for purchases.", ge=0),
        Role("activity_at", UTC_DATETIME, "When the activity happened (UTC): the delta column.", required=True),
    ),
)

KINDS: dict[str, Kind] = {k.name: k for k in (CONTACTS, ENGAGEMENT, ACTIVITIES)}

"""The engagement rows the segment features count: from the engagement data extension, from Marketing
Cloud's own tracking events, or both (`segments.engagement_source`).

Every source is brought to one shape, `(contact_key, action, sentiment, event_at)`, with the actions of the
engagement kind, so the segment rules are the same whatever feeds them:

- tracking events: a sent event is a `send`, an open an `open`, a click a `click`, a bounce (hard, soft or
  other) a `bounce`, an unsubscribe an `unsubscribe`; tracking has no sentiment;
- both: sends, opens, clicks, bounces and unsubscribes come from the tracking events only, every other
  action (responses, with their sentiment) from the data extension. A data extension filled from the same
  tracking (the usual way, with a query on the data views) would otherwise count every open twice.
"""

from collections.abc import Mapping

import polars as pl

#: The engagement action of each tracking-event type.
EVENT_ACTIONS = {"sent": "send", "open": "open", "click": "click", "bounce": "bounce", "unsubscribe": "unsubscribe"}
COLUMNS = {"contact_key": pl.String, "action": pl.String, "sentiment": pl.String,
           "event_at": pl.Datetime("us", "UTC")}


def empty() -> pl.LazyFrame:
    return pl.LazyFrame(schema=COLUMNS)


def from_events(events: Mapping[str, pl.LazyFrame | None]) -> pl.LazyFrame:
    """Clean tracking events (by type) as engagement rows."""
    parts = [frame.select("contact_key", pl.lit(EVENT_ACTIONS[name]).alias("action"),
                          pl.lit(None, pl.String).alias("sentiment"), "event_at")
             for name, frame in events.items() if frame is not None]
    return pl.concat([p.cast(COLUMNS) for p in parts]) if parts else empty()  # type: ignore[arg-type]


def engagement_rows(data_extension: pl.LazyFrame | None, events: Mapping[str, pl.LazyFrame | None],
                    source: str) -> pl.LazyFrame:
    """The engagement rows of `source` (`data_extension`, `events` or `both`)."""
    from_de = data_extension.select(list(COLUMNS)).cast(COLUMNS) if data_extension is not None else empty()  # type: ignore[arg-type]
    if source == "data_extension":
        return from_de
    tracked = from_events(events)
    if source == "events":
        return tracked
    return pl.concat([tracked, from_de.filter(~pl.col("action").is_in(list(EVENT_ACTIONS.values())))])

"""Marketing Cloud's e-mail tracking as events: what each type reads, how it is typed, keyed and checked.

Five event types, each one SOAP object (properties from the WSDL, https://webservice.exacttarget.com/
etframework.wsdl, and Salesforce's object pages, e.g.
https://developer.salesforce.com/docs/marketing/marketing-cloud/guide/sentevent.html):

| type          | object        | beyond SendID, SubscriberKey, EventDate, EventType, BatchID, TSD id |
|---------------|---------------|---------------------------------------------------------------------|
| `sent`        | `SentEvent`   | ListID                                                              |
| `open`        | `OpenEvent`   |                                                                     |
| `click`       | `ClickEvent`  | URL, URLID                                                          |
| `bounce`      | `BounceEvent` | BounceCategory, BounceType, SMTPCode, SMTPReason                    |
| `unsubscribe` | `UnsubEvent`  | ListID, IsMasterUnsubscribed                                        |

Each type is described to the rest of the project as a data extension (`DataExtensionConfig`): its fields,
clean names, natural key and rules, so the clean step, the pandera contract, the gate and the Experience
Platform mapping are the ones every data extension goes through. The natural key of an event is the send,
the subscriber and the event time (and the link, for clicks: a link scanner clicks every link of a message
in the same millisecond); a tracking record served twice is the same key with the same content and is
removed, one key with different content blocks the day.

`EventDate` comes as an `xsd:dateTime` without an offset, which is server time (fixed UTC-6); one with an
offset or `Z` is converted as written. A value that does not parse becomes null and is named in
`_parse_errors`, which the gate rejects, as for data extensions.
"""

import datetime as dt
import functools
import itertools
import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import polars as pl

from sfmc_assets.lib.config import DataExtensionConfig, ProjectConfig, TrackingEventsConfig
from sfmc_assets.lib.experience_platform.xdm import EventTypeSpec, IdentitySpec, XdmMapping
from sfmc_assets.lib.extract import FIELDS_METADATA, READ_METADATA, WRITE_BATCH_ROWS, Window
from sfmc_assets.lib.lake import PartitionWriter
from sfmc_assets.lib.marketing_cloud.errors import MarketingCloudError
from sfmc_assets.lib.marketing_cloud.fields import FieldSpec
from sfmc_assets.lib.marketing_cloud.soap import (
    ReadInterrupted,
    ReadStats,
    SoapReader,
    server_time,
    window_filter,
)
from sfmc_assets.lib.marketing_cloud.types import PARSE_ERRORS, frame_schema

#: Every value `EventType` may hold (the WSDL's `EventType` enumeration).
WSDL_EVENT_TYPES = ("Open", "Click", "HardBounce", "SoftBounce", "OtherBounce", "Unsubscribe", "Sent", "NotSent",
                    "Survey", "ForwardedEmail", "ForwardedEmailOptIn", "DeliveredEvent")
#: ExperienceEvent `eventType` of each `EventType` (XDM's standard direct-marketing event types).
XDM_EVENT_TYPES = {"Sent": "directMarketing.emailSent", "Open": "directMarketing.emailOpened",
                   "Click": "directMarketing.emailClicked", "HardBounce": "directMarketing.emailBounced",
                   "SoftBounce": "directMarketing.emailBouncedSoft", "OtherBounce": "directMarketing.emailBounced",
                   "Unsubscribe": "directMarketing.emailUnsubscribed"}


def _f(name: str, type_: str, required: bool = False) -> FieldSpec:
    return FieldSpec(name=name, type=type_, is_nullable=not required)


_COMMON = (_f("SendID", "Number", True), _f("SubscriberKey", "Text", True), _f("EventDate", "Date", True),
           _f("EventType", "Text"), _f("BatchID", "Number"), _f("TriggeredSendDefinitionObjectID", "Text"))
_CLEAN = {"SendID": "send_id", "SubscriberKey": "contact_key", "EventDate": "event_at", "EventType": "event_type",
          "BatchID": "batch_id", "TriggeredSendDefinitionObjectID": "triggered_send_id", "ListID": "list_id",
          "URL": "url", "URLID": "url_id", "BounceCategory": "bounce_category", "BounceType": "bounce_type",
          "SMTPCode": "smtp_code", "SMTPReason": "smtp_reason", "IsMasterUnsubscribed": "is_master_unsubscribed"}
#: The XDM leaf under `<tenant>.emailTracking` of each clean column (the key and time go to `_id`,
#: `timestamp` and `identityMap`).
_XDM_LEAVES = {"send_id": "sendId", "event_type": "eventType", "batch_id": "batchId",
               "triggered_send_id": "triggeredSendDefinitionObjectId", "list_id": "listId", "url": "url",
               "url_id": "urlId", "bounce_category": "bounceCategory", "bounce_type": "bounceType",
               "smtp_code": "smtpCode", "smtp_reason": "smtpReason", "is_master_unsubscribed": "isMasterUnsubscribed"}


@dataclass(frozen=True)
class EventType:
    """One tracking object read as an event type."""

    name: str  # asset name: sfmc/raw/events/<name>
    object_type: str
    extra: tuple[FieldSpec, ...]
    event_types: tuple[str, ...]  # the EventType values this object holds
    key_extra: tuple[str, ...] = ()

    @property
    def fields(self) -> tuple[FieldSpec, ...]:
        return _COMMON + self.extra

    @property
    def properties(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def key(self) -> tuple[str, ...]:
        return ("SendID", "SubscriberKey", "EventDate", *self.key_extra)


EVENTS: dict[str, EventType] = {e.name: e for e in (
    EventType("sent", "SentEvent", (_f("ListID", "Number"),), ("Sent",)),
    EventType("open", "OpenEvent", (), ("Open",)),
    EventType("click", "ClickEvent", (_f("URL", "Text", True), _f("URLID", "Number")), ("Click",), ("URL",)),
    EventType("bounce", "BounceEvent", (_f("BounceCategory", "Text"), _f("BounceType", "Text"),
                                        _f("SMTPCode", "Text"), _f("SMTPReason", "Text")),
              ("HardBounce", "SoftBounce", "OtherBounce")),
    EventType("unsubscribe", "UnsubEvent", (_f("ListID", "Number"), _f("IsMasterUnsubscribed", "Boolean")),
              ("Unsubscribe",)),
)}


def _mapping(event: EventType, settings: TrackingEventsConfig) -> XdmMapping | None:
    publish = settings.aep
    if publish is None:
        return None
    clean = [_CLEAN[f.name] for f in event.fields]
    return XdmMapping(
        dataset=publish.dataset, xdm_class="experience_event", timestamp="event_at",
        fields={f"{publish.tenant_field}.emailTracking.{_XDM_LEAVES[c]}": c for c in clean if c in _XDM_LEAVES},
        identities={"SFMCSubscriberKey": IdentitySpec(column="contact_key", primary=True)},
        event_type=EventTypeSpec(column="event_type", values={t: XDM_EVENT_TYPES[t] for t in event.event_types}),
        id_columns=[_CLEAN[c] for c in event.key],
    )


def as_data_extension(event: EventType, config: ProjectConfig) -> DataExtensionConfig:
    """The event type described as a data extension: what the clean step, contract and mapping read."""
    settings = config.tracking_events or TrackingEventsConfig()
    return DataExtensionConfig(
        name=f"events_{event.name}", external_key=event.object_type, delta_column="EventDate",
        description=f"Marketing Cloud's `{event.object_type}` tracking records.",
        primary_key=event.key, fields=event.fields, rename={f.name: _CLEAN[f.name] for f in event.fields},
        rules={"event_type": {"isin": event.event_types}}, start_date=settings.start_date,
        quarantine_tolerance=settings.quarantine_tolerance, owners=settings.owners,
        aep=_mapping(event, settings),
        privacy={"contact_key": "SubscriberKey"},  # whose event it is: erasure and suppression match on it
    )


def configured(config: ProjectConfig) -> list[EventType]:
    """The event types the configuration reads, in its order (none without `tracking_events:`)."""
    return [EVENTS[t] for t in config.tracking_events.types] if config.tracking_events else []


# -- typing -----------------------------------------------------------------------------------------

_ISO = "%Y-%m-%dT%H:%M:%S%.f"


def _value(spec: FieldSpec, utc_offset: dt.timedelta) -> pl.Expr:
    """One property's typed value from the SOAP text (blank: null)."""
    raw = pl.col(spec.name)
    text = raw.str.strip_chars()
    if spec.type == "Number":
        value = text.cast(pl.Int64, strict=False)
    elif spec.type == "Boolean":
        lowered = text.str.to_lowercase()
        value = pl.when(lowered.is_in(("true", "1"))).then(True).when(lowered.is_in(("false", "0"))).then(False)
    elif spec.type == "Date":
        # No offset: server time (UTC = server time - offset). An offset or `Z`: as written.
        naive = text.str.strptime(pl.Datetime("us"), _ISO, strict=False).dt.replace_time_zone("UTC") \
            - pl.lit(utc_offset)
        aware = text.str.replace(r"[Zz]$", "+00:00").str.strptime(pl.Datetime("us", "UTC"), f"{_ISO}%:z",
                                                                  strict=False)
        value = pl.coalesce(naive, aware)
    else:
        return pl.when(raw == "").then(None).otherwise(raw).alias(spec.name)
    return pl.when(text == "").then(None).otherwise(value).alias(spec.name)


@functools.lru_cache(maxsize=32)
def _plan(fields: tuple[FieldSpec, ...], utc_offset: dt.timedelta) -> tuple[list[pl.Expr], list[pl.Expr]]:
    """The two steps of `typed_events`, built once per field list (building them costs more than a page)."""
    first = [_value(f, utc_offset) for f in fields] + [pl.col(f.name).alias(f"\x00{f.name}") for f in fields
                                                       if f.type != "Text"]
    errors = [pl.when(pl.col(f.name).is_null() & (pl.col(f"\x00{f.name}").str.strip_chars() != ""))
              .then(pl.format("{}: '{}' is not a valid {}", pl.lit(f.name), pl.col(f"\x00{f.name}"), pl.lit(f.type)))
              for f in fields if f.type != "Text"]
    joined = pl.concat_str(errors, separator="; ", ignore_nulls=True) if errors else pl.lit(None, pl.String)
    message = pl.when(joined == "").then(None).otherwise(joined) if errors else joined
    schema = frame_schema(fields)
    return first, [pl.col(f.name).cast(schema[f.name]) for f in fields] + [message.alias(PARSE_ERRORS)]


def typed_events(strings: pl.DataFrame, fields: tuple[FieldSpec, ...], utc_offset: dt.timedelta) -> pl.DataFrame:
    """A page of SOAP strings as typed columns plus `_parse_errors` (null when every value parsed)."""
    first, second = _plan(tuple(fields), utc_offset)
    return strings.select(first).select(second)


# -- extraction -------------------------------------------------------------------------------------

OpenWriter = Callable[[pl.Schema], AbstractContextManager[PartitionWriter]]


@dataclass
class EventsExtract:
    """What one day's read did: objects Marketing Cloud returned, rows written, how it went."""

    rows: int
    objects: int
    pages: int
    attempts: int
    api_calls: int
    retries: int
    token_replays: int
    duration_s: float
    filter: str
    slices: int
    request_ids: list[str] = field(default_factory=list)
    suppressed: int = 0  # events of erased contacts left out (returned by Marketing Cloud, not written)


def filter_text(window: Window, utc_offset: dt.timedelta) -> str:
    """The day's filter as sent, for metadata and errors."""
    return (f"EventDate greaterThanOrEqual {server_time(window.start, utc_offset)} AND EventDate lessThan "
            f"{server_time(window.end, utc_offset)} (server time)")


def slices_of(window: Window, n: int) -> list[Window]:
    """`n` consecutive half-open sub-windows covering `window` exactly (each read is its own cursor)."""
    step = (window.end - window.start) / max(1, n)
    bounds = [window.start + step * i for i in range(n)] + [window.end]
    return [Window(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def _read(reader: SoapReader, event: EventType, window: Window, slices: int,
          stats: ReadStats) -> Iterator[pl.DataFrame]:
    """Typed pages of every slice of the window, in order."""
    for part in slices_of(window, slices):
        flt = window_filter("EventDate", part.start, part.end)
        for page in reader.read(event.object_type, event.properties, flt, stats):
            yield typed_events(page, event.fields, reader.utc_offset)


def extract_events(reader: SoapReader, event: EventType, window: Window, open_writer: OpenWriter, *,
                   slices: int = 1, read_attempts: int = 3,
                   suppress: Callable[[pl.DataFrame], tuple[pl.DataFrame, int]] | None = None) -> EventsExtract:
    """Read one window of one event type into a partition writer; the partition is replaced only when
    a whole read succeeded. An interrupted read (`ReadInterrupted`) is read again from the start.
    `suppress` drops the events of erased contacts from each page before it is written (returns the page
    and the rows dropped), so they never reach the lake."""
    started = time.monotonic()
    counters = reader.client.counters
    before = {k: counters[k] for k in ("api_calls", "retries", "token_replays")}
    flt = filter_text(window, reader.utc_offset)
    last: ReadInterrupted | None = None
    for attempt in range(1, read_attempts + 1):
        stats = ReadStats()
        try:
            with open_writer(frame_schema(event.fields)) as writer:
                suppressed = _write(_read(reader, event, window, slices, stats), writer, suppress)
                writer.metadata.update(_metadata(event, stats.objects, flt))
        except ReadInterrupted as exc:
            last = exc
            counters["read_restarts"] += 1
            reader.client.log.warning("%s %s: %s (read %d of %d)", event.object_type, window, exc.reason,
                                      attempt, read_attempts)
            continue
        return EventsExtract(
            rows=writer.rows, objects=stats.objects, pages=stats.pages, attempts=attempt,
            api_calls=counters["api_calls"] - before["api_calls"], retries=counters["retries"] - before["retries"],
            token_replays=counters["token_replays"] - before["token_replays"],
            duration_s=time.monotonic() - started, filter=flt, slices=slices,
            request_ids=sorted(set(stats.request_ids)), suppressed=suppressed)
    assert last is not None
    raise MarketingCloudError(f"no complete read of {event.object_type} after {read_attempts} attempts: "
                              f"{last.reason}", request=f"Retrieve {event.object_type} where {flt}")


def _write(pages: Iterator[pl.DataFrame], writer: PartitionWriter,
           suppress: Callable[[pl.DataFrame], tuple[pl.DataFrame, int]] | None = None) -> int:
    """Typed pages to the writer, `WRITE_BATCH_ROWS` at a time (one Parquet write per page costs more);
    returns the rows `suppress` left out."""
    batch: list[pl.DataFrame] = []
    suppressed = 0
    for page in pages:
        if suppress is not None:
            page, dropped = suppress(page)
            suppressed += dropped
        batch.append(page)
        if sum(p.height for p in batch) >= WRITE_BATCH_ROWS:
            writer.write(pl.concat(batch))
            batch = []
    if batch:
        writer.write(pl.concat(batch))
    return suppressed


def _metadata(event: EventType, objects: int, flt: str) -> dict[str, str]:
    """The raw partition's Parquet metadata: its fields and the read (objects returned, filter, when)."""
    read = {"count": objects, "filter": flt, "object_type": event.object_type,
            "read_at": dt.datetime.now(dt.timezone.utc).isoformat()}
    return {FIELDS_METADATA: json.dumps([f.model_dump() for f in event.fields]), READ_METADATA: json.dumps(read)}

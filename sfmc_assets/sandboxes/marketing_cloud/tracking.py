"""The sandbox's e-mail tracking: sends, opens, clicks, bounces and unsubscribes, generated in DuckDB.

Marketing Cloud keeps one tracking record per event and serves them as the SOAP objects `SentEvent`,
`OpenEvent`, `ClickEvent`, `BounceEvent` and `UnsubEvent` (properties from the WSDL and Salesforce's object
pages, e.g. https://developer.salesforce.com/docs/marketing/marketing-cloud/guide/sentevent.html). The
sandbox generates them deterministically from the tenant's seed and its contacts, in the tenant's DuckDB
file, with `EventDate` stored as naive server time (fixed UTC-6), as the data views keep it:

- sends: `sends_per_day` a day, in e-mail jobs (`SendID`) of distinct subscribers, one recipient a second.
  Jobs start at 00:00:00.000 UTC exactly, at 06:00 UTC (midnight server time), at 13:30 and at 23:50 UTC
  (running past midnight), so windows are tested at both day boundaries; every fourth job is a triggered
  send (a `TriggeredSendDefinitionObjectID`, no list);
- opens: 30% of sends are opened, 8% twice, within three days; clicks: 40% of opens click a link, and 2%
  are a link scanner clicking three links in the same millisecond; bounces: 2% of sends (hard, soft,
  block); unsubscribes: 1.5% of opens, from the send's list, some from every list (`IsMasterUnsubscribed`).
"""

import datetime as dt
import json
import math
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from .tenant import Tenant

SERVER_OFFSET_S = -6 * 3600
ACCOUNT_ID = 510000001
DEFAULT_SENDS_PER_DAY = 3000
_LINKS = ["https://shop.example.com/sale", "https://shop.example.com/new", "https://shop.example.com/account",
          "https://shop.example.com/stores", "https://shop.example.com/unsubscribe-centre"]


@dataclass(frozen=True)
class Prop:
    """A retrievable property: its name, the SQL producing its stored value, and its XML type."""

    name: str
    sql: str
    kind: str = "text"  # text | int | date | bool


_COMMON = (Prop("SendID", '"SendID"', "int"), Prop("SubscriberKey", '"SubscriberKey"'),
           Prop("EventDate", '"EventDate"', "date"), Prop("EventType", '"EventType"'),
           Prop("BatchID", '"BatchID"', "int"),
           Prop("TriggeredSendDefinitionObjectID", '"TriggeredSendDefinitionObjectID"'),
           Prop("Client.ID", str(ACCOUNT_ID), "int"))


@dataclass(frozen=True)
class TrackingObject:
    """One SOAP tracking object: its table and the properties a Retrieve may ask for."""

    name: str
    table: str
    props: tuple[Prop, ...]

    def prop(self, name: str) -> Prop | None:
        return next((p for p in self.props if p.name == name), None)


OBJECTS: dict[str, TrackingObject] = {o.name: o for o in (
    TrackingObject("SentEvent", "trk_sent", (*_COMMON, Prop("ListID", '"ListID"', "int"))),
    TrackingObject("OpenEvent", "trk_open", _COMMON),
    TrackingObject("ClickEvent", "trk_click", (*_COMMON, Prop("URL", '"URL"'), Prop("URLID", '"URLID"', "int"))),
    TrackingObject("BounceEvent", "trk_bounce", (*_COMMON, Prop("BounceCategory", '"BounceCategory"'),
                                                 Prop("BounceType", '"BounceType"'), Prop("SMTPCode", '"SMTPCode"'),
                                                 Prop("SMTPReason", '"SMTPReason"'))),
    TrackingObject("UnsubEvent", "trk_unsub", (*_COMMON, Prop("ListID", '"ListID"', "int"),
                                               Prop("IsMasterUnsubscribed", '"IsMasterUnsubscribed"', "bool"))),
)}


def _sql_list(values: Sequence[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _sent_sql(days: int, jobs_per_day: int, per_job: int, n_contacts: int, start_server: str) -> str:
    """One row per (job, recipient): `per_job` distinct subscribers per job, one a second from its slot."""
    n_jobs = days * jobs_per_day
    slot = (f"([0, 21600, 48600, 85800][(job % {jobs_per_day}) % 4 + 1] + "
            f"((job % {jobs_per_day}) // 4) * 600)")
    return f"""
        SELECT seq, 100000 + job AS "SendID",
          'CUST-' || lpad(((h(job, 'first') + k) % {n_contacts})::VARCHAR, 7, '0') AS "SubscriberKey",
          TIMESTAMP '{start_server}' + to_days((job // {jobs_per_day})::INT)
            + to_seconds({slot}::BIGINT) + to_milliseconds((k * 1000 + CASE WHEN k = 0 THEN 0
              ELSE h(seq, 'ms') % 1000 END)::BIGINT) AS "EventDate",
          'Sent' AS "EventType", job * 10 + k // 500 AS "BatchID",
          CASE WHEN job % 4 = 3 THEN lower(substr(md5('tsd' || (job % 3)), 1, 8) || '-' ||
            substr(md5('tsd' || (job % 3)), 9, 4) || '-' || substr(md5('tsd' || (job % 3)), 13, 4) || '-' ||
            substr(md5('tsd' || (job % 3)), 17, 4) || '-' || substr(md5('tsd' || (job % 3)), 21, 12)) END
            AS "TriggeredSendDefinitionObjectID",
          CASE WHEN job % 4 = 3 THEN NULL ELSE 300 + job % 5 END AS "ListID"
        FROM (SELECT i AS seq, i % {n_jobs} AS job, i // {n_jobs} AS k FROM range({n_jobs * per_job}) t(i))"""


def _generation(days: int, jobs_per_day: int, per_job: int, n_contacts: int, start_server: str,
                end_server: str) -> dict[str, str]:
    """The CREATE statements of the five tables, in order (each derives from the ones before it)."""
    before_end = f"\"EventDate\" < TIMESTAMP '{end_server}'"
    common = '"SendID", "SubscriberKey", "BatchID", "TriggeredSendDefinitionObjectID", "ListID"'
    return {
        "trk_sent": _sent_sql(days, jobs_per_day, per_job, n_contacts, start_server),
        "trk_open": f"""
            SELECT * FROM (SELECT seq * 2 + n AS seq, {common}, "EventDate" + to_milliseconds(
                (60000 + h(seq, 'od' || n) % 259200000)::BIGINT) AS "EventDate", 'Open' AS "EventType"
              FROM trk_sent, range(2) r(n)
              WHERE h(seq, 'open') % 100 < CASE WHEN n = 0 THEN 30 ELSE 8 END) WHERE {before_end}""",
        "trk_click": f"""
            SELECT * FROM (SELECT seq * 3 + n AS seq, {common}, "EventDate" + to_milliseconds(
                (5000 + h(seq, 'cd') % 600000)::BIGINT) AS "EventDate", 'Click' AS "EventType",
                {_sql_list(_LINKS)}[((h(seq, 'link') + n) % {len(_LINKS)})::INT + 1] AS "URL",
                (7000 + (h(seq, 'link') + n) % {len(_LINKS)})::BIGINT AS "URLID"
              FROM trk_open, range(3) r(n)
              WHERE h(seq, 'click') % 100 < 40 AND (n = 0 OR h(seq, 'scan') % 50 = 0)) WHERE {before_end}""",
        "trk_bounce": f"""
            SELECT * FROM (SELECT seq, {common}, "EventDate" + to_milliseconds((2000 + h(seq, 'bd') % 298000)::BIGINT)
                AS "EventDate",
                CASE WHEN h(seq, 'bt') % 10 < 6 THEN 'HardBounce' WHEN h(seq, 'bt') % 10 < 9 THEN 'SoftBounce'
                     ELSE 'OtherBounce' END AS "EventType",
                CASE WHEN h(seq, 'bt') % 10 < 6 THEN 'Hard bounce' WHEN h(seq, 'bt') % 10 < 9 THEN 'Soft bounce'
                     ELSE 'Block bounce' END AS "BounceCategory",
                CASE WHEN h(seq, 'bt') % 10 < 6 THEN 'immediate' ELSE 'delayed' END AS "BounceType",
                CASE WHEN h(seq, 'bt') % 10 < 6 THEN '550' WHEN h(seq, 'bt') % 10 < 9 THEN '421' ELSE '554' END
                  AS "SMTPCode",
                CASE WHEN h(seq, 'bt') % 10 < 6 THEN '550 5.1.1 <' || "SubscriberKey" || '>: user unknown'
                     WHEN h(seq, 'bt') % 10 < 9 THEN '421 4.7.0 try again later & slow down'
                     ELSE '554 5.7.1 message rejected: listed at "blocklist.example"' END AS "SMTPReason"
              FROM trk_sent WHERE h(seq, 'bounce') % 100 < 2) WHERE {before_end}""",
        "trk_unsub": f"""
            SELECT * FROM (SELECT seq, "SendID", "SubscriberKey", "BatchID", "TriggeredSendDefinitionObjectID",
                COALESCE("ListID", 300) AS "ListID",
                "EventDate" + to_milliseconds((30000 + h(seq, 'ud') % 3600000)::BIGINT) AS "EventDate",
                'Unsubscribe' AS "EventType", h(seq, 'master') % 5 = 0 AS "IsMasterUnsubscribed"
              FROM trk_open WHERE h(seq, 'unsub') % 1000 < 15) WHERE {before_end}""",
    }


class TrackingEvents:
    """The tracking tables of one sandbox tenant (generated once per tenant parameters)."""

    def __init__(self, tenant: "Tenant", *, sends_per_day: int = DEFAULT_SENDS_PER_DAY) -> None:
        self.tenant = tenant
        self.sends_per_day = sends_per_day
        self._generate_if_needed()

    def _generate_if_needed(self) -> None:
        tenant = self.tenant
        days = max(1, (tenant.end - tenant.start).days)
        contacts = tenant.get("Contacts_DE")
        n_contacts = max(1, tenant.count(contacts)) if contacts is not None else 1
        params = json.dumps({"seed": tenant.seed, "start": tenant.start.isoformat(), "end": tenant.end.isoformat(),
                             "sends_per_day": self.sends_per_day, "contacts": n_contacts, "generator": 1})
        with tenant.lock, tenant.cursor() as cur:
            stored = cur.execute("SELECT v FROM _meta WHERE k = 'tracking'").fetchone()
            if stored and stored[0] == params:
                return
            jobs_per_day = max(4, math.ceil(self.sends_per_day / n_contacts))
            per_job = math.ceil(self.sends_per_day / jobs_per_day)
            start = dt.datetime.combine(tenant.start, dt.time()) + dt.timedelta(seconds=SERVER_OFFSET_S)
            end = dt.datetime.combine(tenant.end, dt.time()) + dt.timedelta(seconds=SERVER_OFFSET_S)
            for table, select in _generation(days, jobs_per_day, per_job, n_contacts, f"{start:%Y-%m-%d %H:%M:%S}",
                                             f"{end:%Y-%m-%d %H:%M:%S}").items():
                cur.execute(f"CREATE OR REPLACE TABLE {table} AS {select}")
            cur.execute("INSERT OR REPLACE INTO _meta VALUES ('tracking', ?)", [params])
            tenant._changed()

    def count(self, object_type: str) -> int:
        with self.tenant.cursor() as cur:
            return cur.execute(f"SELECT count(*) FROM {OBJECTS[object_type].table}").fetchone()[0]

    def ground_truth(self, object_type: str, start_utc: dt.datetime | None = None,
                     end_utc: dt.datetime | None = None) -> pl.DataFrame:
        """The stored events (every property but `Client.ID`), `EventDate` in UTC, in `[start, end)`."""
        obj = OBJECTS[object_type]
        cols = [p.name for p in obj.props if p.name != "Client.ID"]
        conds, params = ["TRUE"], []
        for bound, op in ((start_utc, ">="), (end_utc, "<")):
            if bound is not None:
                conds.append(f'"EventDate" {op} ?')
                params.append((bound.astimezone(dt.timezone.utc) + dt.timedelta(seconds=SERVER_OFFSET_S))
                              .replace(tzinfo=None))
        with self.tenant.cursor() as cur:
            frame = cur.execute(f"SELECT {', '.join(chr(34) + c + chr(34) for c in cols)} FROM {obj.table} "
                                f"WHERE {' AND '.join(conds)} ORDER BY seq", params).pl()
        utc = (pl.col("EventDate") - pl.duration(seconds=SERVER_OFFSET_S)).dt.replace_time_zone("UTC")
        return frame.with_columns(utc.dt.cast_time_unit("us").alias("EventDate"))

    def duplicate(self, object_type: str, day: dt.date, n: int = 3) -> int:
        """Store `n` events of the UTC `day` a second time (a tracking record written twice)."""
        obj = OBJECTS[object_type]
        start = dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=SERVER_OFFSET_S)
        with self.tenant.lock, self.tenant.cursor() as cur:
            cur.execute(f"""INSERT INTO {obj.table} SELECT * REPLACE (seq + 1000000000 AS seq) FROM {obj.table}
                            WHERE "EventDate" >= ? AND "EventDate" < ? ORDER BY seq LIMIT ?""",
                        [start, start + dt.timedelta(days=1), n])
            self.tenant._changed()
            return n

    def execute(self, sql: str, params: Sequence[object] | None = None) -> None:
        """Change the stored events (tests: a null key, an odd value); any change is a new data version."""
        with self.tenant.lock, self.tenant.cursor() as cur:
            cur.execute(sql, params or [])
            self.tenant._changed()


# -- Retrieve cursors ---------------------------------------------------------------------------------

CURSOR_TTL_S = 1200.0  # how long an unfinished RequestID stays usable: UNCONFIRMED for the real service


def _xml_text(sql: str) -> str:
    return f"replace(replace(replace({sql}, '&', '&amp;'), '<', '&lt;'), '>', '&gt;')"


def _element(prop: Prop) -> str:
    """SQL rendering one property as its XML element ('' when the value is null: the element is left out)."""
    if prop.name == "Client.ID":
        return f"'<Client><ID>{ACCOUNT_ID}</ID></Client>'"
    text = {"int": f"CAST({prop.sql} AS VARCHAR)", "date": f"strftime({prop.sql}, '%Y-%m-%dT%H:%M:%S.%g')",
            "bool": f"CASE WHEN {prop.sql} THEN 'true' ELSE 'false' END"}.get(prop.kind, _xml_text(prop.sql))
    return f"CASE WHEN {prop.sql} IS NULL THEN '' ELSE '<{prop.name}>' || {text} || '</{prop.name}>' END"


@dataclass
class Cursor:
    """A Retrieve's result, rendered and ordered once; each page served moves it forward."""

    object_type: str
    table: str
    count: int
    expires: float
    next_row: int = 0


class Cursors:
    """The open RequestIDs of the sandbox's SOAP endpoint."""

    def __init__(self, tracking: TrackingEvents) -> None:
        self.tracking = tracking
        self._lock = threading.Lock()
        self._open: dict[str, Cursor] = {}
        self._seq = 0

    def open(self, obj: TrackingObject, props: Sequence[Prop], where: str, params: Sequence[object]) -> str:
        """Run a Retrieve; returns its RequestID (the result is fixed now, like a server-side cursor)."""
        self._sweep()
        with self._lock:
            self._seq += 1
            table = f"qcache._trk{self._seq}"
        row = "'<Results xsi:type=\"" + obj.name + "\"><PartnerKey xsi:nil=\"true\" /><ObjectID xsi:nil=\"true\" />' || " \
            + " || ".join(_element(p) for p in props) + " || '</Results>'"
        with self.tracking.tenant.cursor() as cur:
            cur.execute(f'CREATE TABLE {table} AS SELECT {row} AS x FROM {obj.table} WHERE {where} '
                        'ORDER BY "EventDate", seq', list(params))
            count = cur.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        request_id = str(uuid.uuid4())
        with self._lock:
            self._open[request_id] = Cursor(obj.name, table, count, time.monotonic() + CURSOR_TTL_S)
        return request_id

    def object_type(self, request_id: str) -> str | None:
        with self._lock:
            cursor = self._open.get(request_id)
        return cursor.object_type if cursor else None

    def next_page(self, request_id: str, batch: int) -> tuple[bool, str] | None:
        """`(more, results_xml)` of the cursor's next page, None for an unknown or finished RequestID."""
        with self._lock:
            cursor = self._open.get(request_id)
            if cursor is None:
                return None
            lo, cursor.next_row = cursor.next_row, cursor.next_row + batch
            more = cursor.next_row < cursor.count
            if not more:
                del self._open[request_id]
        with self.tracking.tenant.cursor() as cur:
            xml = cur.execute(f"SELECT coalesce(string_agg(x, '' ORDER BY rowid), '') FROM {cursor.table} "
                              "WHERE rowid >= ? AND rowid < ?", [lo, lo + batch]).fetchone()[0]
            if not more:
                cur.execute(f"DROP TABLE IF EXISTS {cursor.table}")
        return more, xml

    def _sweep(self) -> None:
        now = time.monotonic()
        with self._lock:
            stale = [(rid, c) for rid, c in self._open.items() if c.expires < now]
            for rid, _ in stale:
                del self._open[rid]
        with self.tracking.tenant.cursor() as cur:
            for _, cursor in stale:
                cur.execute(f"DROP TABLE IF EXISTS {cursor.table}")

"""The SOAP reader against the sandbox's `/Service.asmx`, over HTTP: paging, day boundaries in server time,
faults, malformed XML and a token expiring mid-paging; plus the XML safety of the parser, offline."""

import datetime as dt

import polars as pl
import pytest

from sfmc_assets.lib.events import EVENTS, extract_events, typed_events
from sfmc_assets.lib.extract import Window
from sfmc_assets.lib.lake import ParquetLake
from sfmc_assets.lib.marketing_cloud import MarketingCloudClient, MarketingCloudError
from sfmc_assets.lib.marketing_cloud.soap import (
    ComplexFilter,
    MalformedEnvelope,
    ReadInterrupted,
    ReadStats,
    RetrieveError,
    SimpleFilter,
    SoapFaultError,
    SoapReader,
    parse_response,
    window_filter,
)
from sfmc_assets.sandboxes.marketing_cloud import Fault, MarketingCloudSandbox
from sfmc_assets_tests.conftest import client_for

UTC = dt.timezone.utc
OFFSET = dt.timedelta(hours=-6)
DAY = Window.day("2026-10-03")
SENT = EVENTS["sent"]


def read(client: MarketingCloudClient, object_type: str = "SentEvent", window: Window = DAY,
         properties: list[str] | None = None, stats: ReadStats | None = None, flt: object = None,
         offset: dt.timedelta = OFFSET) -> pl.DataFrame:
    """Every object the window holds, typed like the raw layer (`offset`: of the literals sent)."""
    event = next(e for e in EVENTS.values() if e.object_type == object_type)
    reader = SoapReader(client, utc_offset=offset)
    try:
        flt = flt or window_filter("EventDate", window.start, window.end)
        pages = list(reader.read(object_type, properties or event.properties, flt, stats))  # type: ignore[arg-type]
    finally:
        reader.close()
    return typed_events(pl.concat(pages), event.fields, OFFSET)


def truth(sandbox: MarketingCloudSandbox, object_type: str = "SentEvent", window: Window = DAY) -> pl.DataFrame:
    return sandbox.tracking.ground_truth(object_type, window.start, window.end)


def same_events(got: pl.DataFrame, expected: pl.DataFrame, key: tuple[str, ...] = SENT.key) -> None:
    columns = [c for c in got.columns if c != "_parse_errors"]
    assert got["_parse_errors"].null_count() == got.height
    assert got.height == expected.height
    assert got.select(columns).sort(key).equals(expected.select(columns).sort(key))


def test_pages_of_2500_are_continued_to_the_exact_day(mc_sandbox: MarketingCloudSandbox) -> None:
    stats = ReadStats()
    with client_for(mc_sandbox) as client:
        got = read(client, stats=stats)
        expected = truth(mc_sandbox)
    assert expected.height > 2500  # the sandbox's days need more than one page
    same_events(got, expected)
    assert stats.pages == -(-expected.height // 2500) and stats.objects == expected.height
    assert mc_sandbox.stats()["soap_continue"] == stats.pages - 1
    assert len(set(stats.request_ids)) == 1  # one cursor, continued


def test_every_event_type_reads_its_object(mc_sandbox: MarketingCloudSandbox) -> None:
    with client_for(mc_sandbox) as client:
        for event in EVENTS.values():
            got = read(client, event.object_type)
            same_events(got, truth(mc_sandbox, event.object_type), event.key)
            assert set(got["EventType"].unique()) <= set(event.event_types), event.name


def test_day_boundaries_are_sent_in_server_time(mc_sandbox: MarketingCloudSandbox) -> None:
    """Jobs start at 00:00:00.000 UTC exactly and at 06:00 UTC (midnight server time): each event lands in
    its UTC day once, because the window goes out as [18:00, 18:00) server time, start included."""
    midnight = dt.datetime(2026, 10, 3, tzinfo=UTC)
    with client_for(mc_sandbox) as client:
        day = read(client)
        before = read(client, window=Window.day("2026-10-02"))
    assert day["EventDate"].min() == midnight  # the event at exactly 00:00:00.000 UTC is in this day
    assert (before["EventDate"] < midnight).all() and before["EventDate"].max() > midnight - dt.timedelta(seconds=2)
    server_midnight = midnight + dt.timedelta(hours=6)
    assert day.filter(pl.col("EventDate") == server_midnight).height >= 1  # not a boundary for a UTC day
    assert set(day.select(SENT.key).rows()).isdisjoint(before.select(SENT.key).rows())


def test_between_includes_both_ends_so_days_would_overlap(mc_sandbox: MarketingCloudSandbox) -> None:
    """Why the reader sends >= and <, not `between`: `between` counts the event at midnight in both days."""
    start, end = DAY.start, DAY.end
    between = SimpleFilter("EventDate", "between", dates=(start, end))
    with client_for(mc_sandbox) as client:
        inclusive = read(client, flt=between)
        next_day = read(client, window=Window.day("2026-10-04"))
    assert inclusive.height == truth(mc_sandbox).height + next_day.filter(pl.col("EventDate") == end).height
    assert next_day.filter(pl.col("EventDate") == end).height >= 1


def test_utc_literals_select_the_same_events(mc_sandbox: MarketingCloudSandbox) -> None:
    """A date with `Z` is UTC, one without an offset is server time: both name the same window; UTC instants
    written without their `Z` would select a window six hours off."""
    with_z = ComplexFilter(SimpleFilter("EventDate", "greaterThanOrEqual", values=("2026-10-03T00:00:00Z",)), "AND",
                           SimpleFilter("EventDate", "lessThan", values=("2026-10-04T00:00:00Z",)))
    with client_for(mc_sandbox) as client:
        server = read(client)
        utc = read(client, flt=with_z)
        shifted = read(client, offset=dt.timedelta(0))
    assert server.select(SENT.key).sort(SENT.key).equals(utc.select(SENT.key).sort(SENT.key))
    assert shifted["EventDate"].min() == DAY.start + dt.timedelta(hours=6)  # midnight server time


def test_token_expiring_mid_paging_is_renewed_and_the_page_replayed(mc_sandbox: MarketingCloudSandbox) -> None:
    mc_sandbox.set_faults([Fault(route="soap", kind="expire_token", after=1, times=1)])
    with client_for(mc_sandbox) as client:
        got = read(client)
        assert client.counters["token_replays"] == 1 and client.counters["token_requests"] == 2
    same_events(got, truth(mc_sandbox))
    assert mc_sandbox.stats()["token"] == 2


@pytest.mark.parametrize("fault", [
    Fault(route="soap", kind="status", status=429, times=2),  # SOAP throttling: a `Rate Limited` fault
    Fault(route="soap", kind="status", status=503, retry_after=0, times=2),
    Fault(route="soap", kind="status", status=500, times=1),  # a Server fault on the first Retrieve
    Fault(route="soap", kind="malformed", times=1),  # the first answer cut in half
    Fault(route="soap", kind="reset", times=1),
    Fault(route="soap", kind="status", status=429, after=1, times=2),  # throttled continuation: in place
], ids=["rate-limited", "503", "server-fault", "malformed-first", "reset-first", "rate-limited-continue"])
def test_transient_faults_are_retried_to_the_exact_result(mc_sandbox: MarketingCloudSandbox, fault: Fault) -> None:
    mc_sandbox.set_faults([fault])
    with client_for(mc_sandbox) as client:
        got = read(client)
        assert client.counters["retries"] >= 1
    same_events(got, truth(mc_sandbox))


@pytest.mark.parametrize("kind", ["malformed", "truncate", "reset"])
def test_an_ambiguous_continuation_interrupts_the_read(mc_sandbox: MarketingCloudSandbox, kind: str) -> None:
    """The cursor may have moved: the page is not asked again (it could be the next one), the read stops."""
    mc_sandbox.set_faults([Fault(route="soap", kind=kind, after=1, times=1)])
    with client_for(mc_sandbox) as client, pytest.raises(ReadInterrupted, match="ContinueRequest after page 1"):
        read(client)


@pytest.mark.parametrize("kind", ["malformed", "truncate"])
def test_an_interrupted_read_is_read_again_whole(mc_sandbox: MarketingCloudSandbox, tmp_path, kind: str) -> None:
    mc_sandbox.set_faults([Fault(route="soap", kind=kind, after=1, times=1)])
    lake = ParquetLake(str(tmp_path))
    with client_for(mc_sandbox) as client:
        reader = SoapReader(client)
        result = extract_events(reader, SENT, DAY, lambda schema: lake.writer(["sent"], "d", schema))
        assert client.counters["read_restarts"] == 1
    assert result.attempts == 2 and result.rows == result.objects == truth(mc_sandbox).height
    same_events(lake.read(["sent"], "d"), truth(mc_sandbox))


def test_a_server_timeout_status_is_read_again(mc_sandbox: MarketingCloudSandbox, tmp_path) -> None:
    """`Error: Timeout expired.` at HTTP 200 is the server giving up on a slow query, not a wrong request."""
    mc_sandbox.set_faults([Fault(route="soap", kind="status", status=200, times=1)])
    lake = ParquetLake(str(tmp_path))
    with client_for(mc_sandbox) as client:
        result = extract_events(SoapReader(client), SENT, DAY, lambda schema: lake.writer(["s"], "d", schema))
    assert result.attempts == 2 and result.rows == truth(mc_sandbox).height


def test_a_storm_that_does_not_end_fails_naming_the_request(mc_sandbox: MarketingCloudSandbox) -> None:
    mc_sandbox.set_faults([Fault(route="soap", kind="status", status=429, times=None)])
    with client_for(mc_sandbox) as client, pytest.raises(MarketingCloudError) as err:
        read(client)
    text = str(err.value)
    assert "gave up after" in text and "Rate Limited" in text and "Retrieve SentEvent" in text
    assert "eyJ" not in text  # never the token


def test_a_property_the_object_lacks_is_named_and_not_retried(mc_sandbox: MarketingCloudSandbox) -> None:
    with client_for(mc_sandbox) as client, pytest.raises(RetrieveError) as err:
        read(client, "OpenEvent", properties=["SendID", "EventDate", "URL"])
    assert "The Request Property(s) URL do not match with the fields of OpenEvent retrieve" in str(err.value)
    assert mc_sandbox.stats()["soap"] == 1


def test_an_unknown_object_type_is_named(mc_sandbox: MarketingCloudSandbox) -> None:
    with client_for(mc_sandbox) as client, pytest.raises(RetrieveError, match="object type: SentEvents"):
        list(SoapReader(client).read("SentEvents", ["SendID"], None))


def test_bad_filters_are_refused_with_marketing_clouds_answers(mc_sandbox: MarketingCloudSandbox) -> None:
    untyped = ComplexFilter(SimpleFilter("EventDate", "greaterThan", dates=(DAY.start,)), "AND",
                            SimpleFilter("Nope", "equals", values=("1",)))
    with client_for(mc_sandbox) as client:
        reader = SoapReader(client)
        with pytest.raises(RetrieveError, match=r"Filter Property\(s\) Nope"):
            list(reader.read("SentEvent", ["SendID"], untyped))
        with pytest.raises(SoapFaultError, match=r"soap:Client.*'around' is not a valid value"):
            list(reader.read("SentEvent", ["SendID"], SimpleFilter("SendID", "around", values=("1",))))
        assert client.counters["retries"] == 0


def test_a_token_refused_after_renewal_fails_clearly(mc_sandbox: MarketingCloudSandbox) -> None:
    mc_sandbox.set_faults([Fault(route="soap", kind="status", status=401, times=None)])
    with client_for(mc_sandbox) as client, pytest.raises(SoapFaultError, match=r"Login failed.*tracking_events_read"):
        read(client)


# -- the parser, offline ----------------------------------------------------------------------------

_ENVELOPE = ('<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>{}</soap:Body>'
             "</soap:Envelope>")


def test_entities_and_dtds_are_refused() -> None:
    bomb = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
            + _ENVELOPE.format('<RetrieveResponseMsg xmlns="http://exacttarget.com/wsdl/partnerAPI">'
                               "<OverallStatus>&lol2;</OverallStatus></RetrieveResponseMsg>"))
    with pytest.raises(MalformedEnvelope, match="DOCTYPE"):
        parse_response(bomb.encode(), ["SendID"])
    external = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                + _ENVELOPE.format("<x>&e;</x>"))
    with pytest.raises(MalformedEnvelope):
        parse_response(external.encode(), ["SendID"])


@pytest.mark.parametrize("body", [b"", b"<html>maintenance</html>", b"<soap:Envelope", _ENVELOPE.format("").encode(),
                                  _ENVELOPE.format("<Other/>").encode()])
def test_what_is_not_a_retrieve_answer_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedEnvelope):
        parse_response(body, ["SendID"])


def test_partner_properties_nested_objects_and_nil_values_are_read() -> None:
    body = _ENVELOPE.format(
        '<RetrieveResponseMsg xmlns="http://exacttarget.com/wsdl/partnerAPI" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><OverallStatus>OK</OverallStatus>'
        '<RequestID>r1</RequestID><Results xsi:type="SentEvent"><PartnerKey xsi:nil="true"/>'
        "<Client><ID>5</ID></Client><PartnerProperties><Name>SubscriberID</Name><Value>8</Value>"
        "</PartnerProperties><SendID>1</SendID><EventDate>2026-10-02T18:00:00.5</EventDate>"
        "<URL/></Results></RetrieveResponseMsg>")
    page = parse_response(body.encode(), ["SendID", "EventDate", "Client.ID", "SubscriberID", "URL", "ListID"])
    assert page.rows.to_dicts() == [{"SendID": "1", "EventDate": "2026-10-02T18:00:00.5", "Client.ID": "5",
                                     "SubscriberID": "8", "URL": "", "ListID": None}]


def test_event_dates_without_offset_are_server_time_with_offset_as_written() -> None:
    strings = pl.DataFrame({f.name: [None, None, None] for f in SENT.fields}, schema={f.name: pl.String for f in SENT.fields})
    strings = strings.with_columns(pl.Series("EventDate", ["2026-10-02T18:00:00", "2026-10-03T00:00:00Z",
                                                           "2026-10-02 99:00"]),
                                   pl.Series("SendID", ["1", "2", "x"]), pl.Series("SubscriberKey", ["a", "b", "c"]))
    typed = typed_events(strings, SENT.fields, OFFSET)
    midnight = dt.datetime(2026, 10, 3, tzinfo=UTC)
    assert typed["EventDate"].to_list()[:2] == [midnight, midnight] and typed["EventDate"][2] is None
    assert typed["_parse_errors"][2] == "SendID: 'x' is not a valid Number; EventDate: '2026-10-02 99:00' is not a valid Date"
    assert typed["_parse_errors"][:2].null_count() == 2


def test_values_holding_the_fast_paths_separators_are_read_exactly() -> None:
    """The XSLT path separates values with private-use characters; a page holding one is read the slow way."""
    odd = "a\ue000b\ue001c"
    body = _ENVELOPE.format(
        '<RetrieveResponseMsg xmlns="http://exacttarget.com/wsdl/partnerAPI"><OverallStatus>OK</OverallStatus>'
        f"<Results><SendID>1</SendID><SMTPReason>{odd}</SMTPReason></Results>"
        "<Results><SendID>2</SendID><SMTPReason>plain &amp; &lt;escaped&gt;</SMTPReason></Results>"
        "</RetrieveResponseMsg>")
    page = parse_response(body.encode(), ["SendID", "SMTPReason"])
    assert page.rows.to_dicts() == [{"SendID": "1", "SMTPReason": odd},
                                    {"SendID": "2", "SMTPReason": "plain & <escaped>"}]
    for value in ("n", "v", "", "\ue000"):  # a cell's own markers as values: read as they are
        one = _ENVELOPE.format('<RetrieveResponseMsg xmlns="http://exacttarget.com/wsdl/partnerAPI"><OverallStatus>'
                               f"OK</OverallStatus><Results><SMTPReason>{value}</SMTPReason></Results>"
                               "</RetrieveResponseMsg>")
        assert parse_response(one.encode(), ["SMTPReason", "URL"]).rows.to_dicts() == [
            {"SMTPReason": value, "URL": None}]

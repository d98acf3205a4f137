"""Marketing Cloud's SOAP API: `Retrieve` with `ContinueRequest` paging, for objects REST does not reach.

The e-mail tracking objects (`SentEvent`, `OpenEvent`, `ClickEvent`, `BounceEvent`, `UnsubEvent`) are only
readable through SOAP. What this module relies on, from Salesforce's documentation and WSDL
(https://webservice.exacttarget.com/etframework.wsdl):

- `POST {soap_instance_url}Service.asmx`, SOAP 1.1, `SOAPAction: Retrieve`; the OAuth token of the REST
  client travels in the header as `<fueloauth xmlns="http://exacttarget.com">`
  (https://developer.salesforce.com/docs/marketing/marketing-cloud/guide/authenticate-soap-api.html).
- A `RetrieveRequest` names the object type, the properties to return (explicitly: there is no `*`) and a
  filter (`SimpleFilterPart`, or a `ComplexFilterPart` whose operands carry their `xsi:type`). Dates go in
  `DateValue`; a value without an offset is server time
  (https://developer.salesforce.com/docs/marketing/marketing-cloud/guide/incoming_date_normalization.html).
- A response holds at most 2,500 objects; `OverallStatus` `MoreDataAvailable` means the next page is had by
  sending the `RequestID` back as `ContinueRequest`, until `OK`
  (https://developer.salesforce.com/docs/marketing/marketing-cloud/guide/continuerequest_2500records.html).
- Functional errors come back as HTTP 200 with an `OverallStatus` beginning with `Error` (`Error: The
  Request Property(s) X do not match ...`); faults are HTTP 500 `soap:Fault`s: `Security` for a token that
  is expired or not accepted, `Server` with an `apifault` code otherwise, `Rate Limited` (code 17) when
  throttled (https://developer.salesforce.com/docs/marketing/marketing-cloud/guide/soap_faults.html,
  https://developer.salesforce.com/docs/marketing/marketing-cloud/guide/rate-limiting.html).

A continued read is a server-side cursor: whether a `ContinueRequest` that timed out or whose answer was
cut short advanced the cursor is not documented. So a continuation is only retried in place when the
server refused it before doing anything (a throttle, a rejected token, a 503); any other failure
interrupts the read (`ReadInterrupted`) and the caller reads the window again from the start, so a page
is never skipped or delivered twice.

Responses are parsed by lxml with a parser that loads no DTD, expands no entity and opens no network
connection; a document carrying a DOCTYPE is refused as malformed.
"""

import datetime as dt
import functools
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import requests
from lxml import etree
from requests.adapters import HTTPAdapter

from sfmc_assets.lib.marketing_cloud.client import MarketingCloudClient
from sfmc_assets.lib.marketing_cloud.errors import MarketingCloudError, RetryableError
from sfmc_assets.lib.retrying import GaveUp, call_with_retries, retry_after_seconds

PARTNER_NS = "http://exacttarget.com/wsdl/partnerAPI"
FUEL_NS = "http://exacttarget.com"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
#: Objects per page: the API's predefined batch size for most objects, and its maximum.
MAX_BATCH = 2500
_DATE_LITERAL = "%Y-%m-%dT%H:%M:%S"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                          remove_comments=True, huge_tree=False)
_NIL = f"{{{XSI}}}nil"


class SoapFaultError(MarketingCloudError):
    """Marketing Cloud answered with a SOAP fault that retrying cannot fix (a Client fault, a token
    refused even after renewing it)."""


class RetrieveError(MarketingCloudError):
    """A Retrieve answered `OverallStatus: Error...`: the request itself is wrong (an unknown object type,
    a property that cannot be retrieved, a filter the object does not accept)."""


class ReadInterrupted(MarketingCloudError):
    """A continued read failed in a way that may have moved the server's cursor: read the window again."""


class _Ambiguous(RetryableError):
    """A transient failure after which the server may have processed the request."""


# -- requests ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimpleFilter:
    """`SimpleFilterPart`: a property, an operator (`equals`, `greaterThanOrEqual`, `lessThan`,
    `between`, ...) and its values; datetimes go in `DateValue`, written in server time."""

    property: str
    operator: str
    values: tuple[str, ...] = ()
    dates: tuple[dt.datetime, ...] = ()


@dataclass(frozen=True)
class ComplexFilter:
    """`ComplexFilterPart`: two filters joined by `AND` or `OR`."""

    left: "Filter"
    logical: str
    right: "Filter"


Filter = SimpleFilter | ComplexFilter


def server_time(value: dt.datetime, utc_offset: dt.timedelta) -> str:
    """An aware datetime as the naive literal Marketing Cloud reads as server time."""
    return (value.astimezone(dt.timezone.utc) + utc_offset).strftime(_DATE_LITERAL)


def window_filter(prop: str, start: dt.datetime, end: dt.datetime) -> ComplexFilter:
    """`start <= prop < end` (the envelope writes the instants in server time). Not `between`, which
    includes both ends: an event at exactly midnight would land in two days."""
    return ComplexFilter(SimpleFilter(prop, "greaterThanOrEqual", dates=(start,)), "AND",
                         SimpleFilter(prop, "lessThan", dates=(end,)))


def _el(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    node = etree.SubElement(parent, f"{{{PARTNER_NS}}}{tag}")
    if text is not None:
        node.text = text
    return node


def _filter_into(node: etree._Element, flt: Filter, utc_offset: dt.timedelta) -> None:
    node.set(f"{{{XSI}}}type", "SimpleFilterPart" if isinstance(flt, SimpleFilter) else "ComplexFilterPart")
    if isinstance(flt, SimpleFilter):
        _el(node, "Property", flt.property)
        _el(node, "SimpleOperator", flt.operator)
        for value in flt.values:
            _el(node, "Value", value)
        for date in flt.dates:
            _el(node, "DateValue", server_time(date, utc_offset))
        return
    _filter_into(_el(node, "LeftOperand"), flt.left, utc_offset)
    _el(node, "LogicalOperator", flt.logical)
    _filter_into(_el(node, "RightOperand"), flt.right, utc_offset)


def retrieve_envelope(token: str, *, object_type: str | None = None, properties: Sequence[str] = (),
                      flt: Filter | None = None, continue_request: str | None = None,
                      utc_offset: dt.timedelta = dt.timedelta(hours=-6)) -> bytes:
    """A `RetrieveRequestMsg`: a new retrieve, or (`continue_request`) the next page of one."""
    nsmap = {"soap": SOAP_ENV, "xsi": XSI}
    envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap=nsmap)
    header = etree.SubElement(envelope, f"{{{SOAP_ENV}}}Header")
    etree.SubElement(header, f"{{{FUEL_NS}}}fueloauth", nsmap={None: FUEL_NS}).text = token
    body = etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body")
    msg = etree.SubElement(body, f"{{{PARTNER_NS}}}RetrieveRequestMsg", nsmap={None: PARTNER_NS})
    request = _el(msg, "RetrieveRequest")
    if object_type is not None:
        _el(request, "ObjectType", object_type)
    for prop in properties:
        _el(request, "Properties", prop)
    if flt is not None:
        _filter_into(_el(request, "Filter"), flt, utc_offset)
    if continue_request is not None:
        _el(request, "ContinueRequest", continue_request)
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")


# -- responses --------------------------------------------------------------------------------------


class MalformedEnvelope(ValueError):
    """The body is not a SOAP envelope holding a Retrieve response or a fault."""


@dataclass(frozen=True)
class Fault:
    """A `soap:Fault`: its code (`Security`, `Server`, `Client`), text and `apifault` code, if any."""

    code: str
    message: str
    api_code: int | None = None

    @property
    def security(self) -> bool:
        return self.code.rsplit(":", 1)[-1].lower().startswith("security")

    @property
    def rate_limited(self) -> bool:
        return self.api_code == 17 or "rate limited" in self.message.lower()

    @property
    def client(self) -> bool:
        return self.code.rsplit(":", 1)[-1].lower().startswith("client")


@dataclass(frozen=True)
class RetrievePage:
    """One Retrieve response: status, cursor id and the objects, one string column per property."""

    status: str
    request_id: str | None
    rows: pl.DataFrame

    @property
    def more(self) -> bool:
        return self.status == "MoreDataAvailable"


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _document(content: bytes) -> etree._Element:
    try:
        root = etree.fromstring(content, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise MalformedEnvelope(f"not well-formed XML ({exc.msg})") from None
    if root.getroottree().docinfo.doctype:
        raise MalformedEnvelope("the document declares a DOCTYPE (refused: no DTDs or entities)")
    if root.tag not in (f"{{{SOAP_ENV}}}Envelope", f"{{{SOAP12_ENV}}}Envelope"):
        raise MalformedEnvelope(f"the root element is {_local(root.tag) or root.tag!r}, not a SOAP Envelope")
    return root


def _body(root: etree._Element) -> etree._Element:
    body = next((c for c in root if _local(c.tag) == "Body"), None)
    if body is None or len(body) == 0:
        raise MalformedEnvelope("the envelope has no Body content")
    return body[0]


def _fault(node: etree._Element) -> Fault:
    text = {_local(c.tag): (c.text or "").strip() for c in node if _local(c.tag) in ("faultcode", "faultstring")}
    code = next((el.text for el in node.iter() if _local(el.tag) == "Code" and el.text), None)
    return Fault(text.get("faultcode", ""), text.get("faultstring", ""),
                 int(code) if code and code.strip().isdigit() else None)


def _leaves(node: etree._Element, prefix: str, row: dict[str, str | None]) -> None:
    """Nested objects as `Parent.Child` properties (`Client.ID`)."""
    for child in node:
        name = f"{prefix}.{_local(child.tag)}"
        if len(child):
            _leaves(child, name, row)
        else:
            row[name] = None if child.get(_NIL) == "true" else (child.text or "")


def _flatten(result: etree._Element, wanted: set[str]) -> dict[str, str | None]:
    """One `Results` object as property -> text, nested objects flattened, and the name/value pairs of
    `PartnerProperties` (where Marketing Cloud returns some requested properties) as properties."""
    row: dict[str, str | None] = {}
    for child in result:
        name = _local(child.tag)
        if name == "PartnerProperties":
            pair = {_local(c.tag): c.text for c in child}
            if pair.get("Name") in wanted and pair["Name"] not in row:
                row[str(pair["Name"])] = pair.get("Value")
        elif len(child):
            _leaves(child, name, row)
        else:
            row[name] = None if child.get(_NIL) == "true" else (child.text or "")
    return row


#: Separators of the XSLT's text output: private-use characters, legal in XML but not expected in tracking
#: data. Each cell is `v<text>` or `n` (null), so a value can never be mistaken for a null; a value holding a
#: separator changes the page's counts, and such a page is read the slow way (`_flatten`).
_FIELD, _ROW = "\ue000", "\ue001"


@functools.lru_cache(maxsize=32)
def _columns_xslt(properties: tuple[str, ...]) -> etree.XSLT:
    """An XSLT writing each `Results` as one row of the properties' texts (libxslt runs it in C, without
    the GIL): a property's element, else its `PartnerProperties` pair, else null."""
    cells = []
    for name in properties:
        path = "/".join(f"p:{part}" for part in name.split("."))
        pair = f"p:PartnerProperties[p:Name='{name}']"
        cells.append(f'<xsl:choose><xsl:when test="{path}[not(@xsi:nil=\'true\')]">v<xsl:value-of select="{path}"/>'
                     f'</xsl:when><xsl:when test="{pair}">v<xsl:value-of select="{pair}/p:Value"/></xsl:when>'
                     "<xsl:otherwise>n</xsl:otherwise></xsl:choose>")
    sheet = (f'<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform" xmlns:p="{PARTNER_NS}" '
             f'xmlns:xsi="{XSI}"><xsl:output method="text" encoding="utf-8"/><xsl:template match="/">'
             f'<xsl:for-each select="/*/*/p:RetrieveResponseMsg/p:Results">{f"<xsl:text>{_FIELD}</xsl:text>".join(cells)}'
             f"<xsl:text>{_ROW}</xsl:text></xsl:for-each></xsl:template></xsl:stylesheet>")
    return etree.XSLT(etree.fromstring(sheet.encode()), access_control=etree.XSLTAccessControl.DENY_ALL)


def _rows_fast(msg: etree._Element, properties: Sequence[str], objects: int) -> pl.DataFrame | None:
    """The page's objects through the XSLT, None when its output cannot be split with certainty."""
    text = str(_columns_xslt(tuple(properties))(msg.getroottree()))
    rows = text.split(_ROW)
    if len(rows) != objects + 1 or rows[-1]:
        return None
    parts = pl.Series(rows[:-1], dtype=pl.String).str.split(_FIELD)
    if objects and not (parts.list.len() == len(properties)).all():
        return None
    columns = {p: parts.list.get(i) for i, p in enumerate(properties)} if objects else \
        {p: pl.Series([], dtype=pl.String) for p in properties}
    return pl.DataFrame(columns).with_columns(
        pl.when(pl.all().str.starts_with("v")).then(pl.all().str.slice(1)).otherwise(None).name.keep())


def _page(msg: etree._Element, properties: Sequence[str]) -> RetrievePage:
    status, request_id = None, None
    results = []
    for child in msg:
        name = _local(child.tag)
        if name == "OverallStatus":
            status = (child.text or "").strip()
        elif name == "RequestID":
            request_id = (child.text or "").strip() or None
        elif name == "Results":
            results.append(child)
    if status is None:
        raise MalformedEnvelope("the RetrieveResponseMsg has no OverallStatus")
    wanted = set(properties)
    if status.startswith(("Error", "HasErrors")):
        messages = [str(o["StatusMessage"]) for o in (_flatten(r, wanted) for r in results) if o.get("StatusMessage")]
        status = status if ":" in status or not messages else f"{status}: {'; '.join(messages)}"
        results = []
    fast = _rows_fast(msg, properties, len(results)) if msg.tag == f"{{{PARTNER_NS}}}RetrieveResponseMsg" \
        and status in ("OK", "MoreDataAvailable") else None
    if fast is None:
        objects = [_flatten(r, wanted) for r in results]
        fast = pl.DataFrame({p: [o.get(p) for o in objects] for p in properties},
                            schema={p: pl.String for p in properties})
    return RetrievePage(status, request_id, fast)


def parse_response(content: bytes, properties: Sequence[str]) -> RetrievePage | Fault:
    """A Retrieve answer: its page of strings (a property an object lacks is null), or its fault.

    Raises `MalformedEnvelope` for anything else.
    """
    first = _body(_document(content))
    name = _local(first.tag)
    if name == "Fault":
        return _fault(first)
    if name != "RetrieveResponseMsg":
        raise MalformedEnvelope(f"the Body holds {name!r}, not a RetrieveResponseMsg")
    return _page(first, properties)


# -- the reader -------------------------------------------------------------------------------------


@dataclass
class ReadStats:
    """What one read of one filter returned: pages and objects, as Marketing Cloud sent them."""

    pages: int = 0
    objects: int = 0
    request_ids: list[str] = field(default_factory=list)


class SoapReader:
    """Retrieves of one account, with the REST client's token, retries and counters."""

    def __init__(self, client: MarketingCloudClient, *, timeout: tuple[float, float] = (10.0, 120.0),
                 utc_offset: dt.timedelta = dt.timedelta(hours=-6), pool_size: int = 8) -> None:
        self.client = client
        self.timeout = timeout
        self.utc_offset = utc_offset
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max(2, pool_size), max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def close(self) -> None:
        self._session.close()

    def read(self, object_type: str, properties: Sequence[str], flt: Filter | None,
             stats: ReadStats | None = None) -> Iterator[pl.DataFrame]:
        """Every object the filter selects, page by page (strings). Raises `ReadInterrupted` when a
        continued page failed ambiguously: the caller discards what it got and reads again.

        The next page is asked for (in one background thread) as soon as a page's status and RequestID
        are known, so the caller's work on a page overlaps the server's work on the next; lxml parses and
        transforms without the GIL.
        """
        stats = stats if stats is not None else ReadStats()
        request = f"Retrieve {object_type}"
        ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"soap-{object_type}")
        try:
            page = self._call(request, idempotent=True, object_type=object_type, properties=properties, flt=flt)
            while True:
                self._check_status(page, request, object_type, properties)
                stats.pages += 1
                stats.objects += page.rows.height
                if page.request_id:
                    stats.request_ids.append(page.request_id)
                if page.more and not page.request_id:
                    raise ReadInterrupted(f"{object_type}: MoreDataAvailable without a RequestID to continue",
                                          request=request)
                following: Future[RetrievePage] | None = ahead.submit(
                    self._call, f"{request} (ContinueRequest after page {stats.pages})", idempotent=False,
                    properties=properties, continue_request=page.request_id) if page.more else None
                yield page.rows
                if following is None:
                    return
                page = following.result()
        finally:
            ahead.shutdown(wait=True, cancel_futures=True)

    @staticmethod
    def _check_status(page: RetrievePage, request: str, object_type: str, properties: Sequence[str]) -> None:
        if page.status in ("OK", "MoreDataAvailable"):
            return
        if "timeout expired" in page.status.lower():
            # "Error: Timeout expired." is the server giving up on a slow query: worth another read.
            raise ReadInterrupted(f"Marketing Cloud timed out reading {object_type}: {page.status}",
                                  request=request, status=200)
        raise RetrieveError(f"Marketing Cloud refused to retrieve {object_type} (properties "
                            f"{', '.join(properties)}): {page.status}", request=request, status=200)

    def _call(self, request: str, *, idempotent: bool, properties: Sequence[str], **kwargs: Any) -> RetrievePage:
        """One Retrieve exchange within the client's retry policy (see the module docstring)."""
        self.client.counters["api_calls"] += 1

        def attempt() -> RetrievePage:
            try:
                return self._exchange(request, properties, **kwargs)
            except _Ambiguous as exc:
                if idempotent:
                    raise
                raise ReadInterrupted(f"the continued read was interrupted ({exc.reason}); reading again",
                                      request=request, status=exc.status) from None

        try:
            return call_with_retries(attempt, settings=self.client.retry, transient=RetryableError,
                                     counters=self.client.counters, log=self.client.log,
                                     service="Marketing Cloud SOAP")
        except GaveUp as gave_up:
            last = gave_up.last
            assert isinstance(last, RetryableError)
            raise MarketingCloudError(
                f"gave up after {gave_up.attempts} attempt(s) in {gave_up.elapsed_s:.1f}s: {last.reason}",
                request=request, status=last.status) from None

    def _exchange(self, request: str, properties: Sequence[str], **kwargs: Any) -> RetrievePage:
        """POST one envelope; a refused token is renewed and the request sent once more."""
        access = self.client.soap_access()
        for replay in (False, True):
            # A continuation names only the cursor, as Salesforce's samples send it.
            envelope = retrieve_envelope(access.token, utc_offset=self.utc_offset, **kwargs,
                                         properties=() if "continue_request" in kwargs else properties)
            response = self._post(access.soap_base + "Service.asmx", envelope, request)
            try:
                parsed: RetrievePage | Fault | MalformedEnvelope = parse_response(response.content, properties)
            except MalformedEnvelope as exc:
                parsed = exc
            if isinstance(parsed, Fault) and parsed.security and not replay:
                # Expired or revoked token: the request was refused before anything was done.
                self.client.counters["token_replays"] += 1
                access = self.client.soap_access(stale=access.token)
                continue
            return self._answer(response, parsed, request)
        raise AssertionError("unreachable")

    def _post(self, url: str, envelope: bytes, request: str) -> requests.Response:
        self.client.counters["http_requests"] += 1
        try:
            response = self._session.post(url, data=envelope, timeout=self.timeout, headers={
                "Content-Type": "text/xml; charset=utf-8", "SOAPAction": "Retrieve"})
            _ = response.content  # read the body here, so a cut connection is caught as transient
            return response
        except requests.Timeout:
            raise _Ambiguous(f"timed out after {self.timeout[1]:.0f}s", request=request) from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise _Ambiguous(f"connection failed or dropped ({type(exc.__context__ or exc).__name__})",
                             request=request) from None

    def _answer(self, response: requests.Response, parsed: "RetrievePage | Fault | MalformedEnvelope",
                request: str) -> RetrievePage:
        """The page a 200 holds, or the error an answer means (transient ones as `RetryableError`)."""
        status = response.status_code
        if isinstance(parsed, Fault):
            text = self.client.session.scrub(parsed.message) or "(no message)"  # never echo a secret
            message = f"SOAP fault {parsed.code or '(no code)'}: {text}" + (
                f" (code {parsed.api_code})" if parsed.api_code is not None else "")
            if parsed.rate_limited:
                raise RetryableError(f"throttled: {message}", request=request, status=status,
                                     retry_after=retry_after_seconds(response.headers.get("Retry-After")))
            if parsed.security or parsed.client:
                hint = (" (does the installed package grant `tracking_events_read`?)" if parsed.security
                        else "")
                raise SoapFaultError(f"Marketing Cloud refused the request: {message}{hint}", request=request,
                                     status=status)
            raise _Ambiguous(message, request=request, status=status)
        if status in (429, 503):  # refused before processing: retried in place, Retry-After honoured
            raise RetryableError(f"Marketing Cloud answered {status}", request=request, status=status,
                                 retry_after=retry_after_seconds(response.headers.get("Retry-After")))
        if status >= 500:
            raise _Ambiguous(f"Marketing Cloud answered {status} without a SOAP fault", request=request,
                             status=status)
        if status != 200:
            raise MarketingCloudError(f"unexpected HTTP {status} from the SOAP endpoint", request=request,
                                      status=status)
        if isinstance(parsed, MalformedEnvelope):
            raise _Ambiguous(f"malformed response ({len(response.content)} bytes: {parsed})", request=request,
                             status=200)
        if parsed.status.startswith(("Error", "HasErrors")):
            return RetrievePage(self.client.session.scrub(parsed.status) or parsed.status, parsed.request_id,
                                parsed.rows)
        return parsed

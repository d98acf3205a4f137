"""`POST /Service.asmx`: the sandbox's SOAP endpoint, `Retrieve` of the e-mail tracking objects.

What it serves, as Marketing Cloud does (sources in the client, `sfmc_assets/lib/marketing_cloud/soap.py`):
- SOAP 1.1 (1.2 envelopes are read too); the OAuth token issued by `/v2/token` in `<fueloauth>`. A token
  past its lifetime is a `q0:Security` fault `Token Expired`, one the sandbox never issued `Login failed`
  (HTTP 500, as SOAP 1.1 faults are sent);
- `RetrieveRequest` with `ObjectType`, explicit `Properties`, a `Filter` (`SimpleFilterPart`, or a
  `ComplexFilterPart` whose operands carry `xsi:type`; an operand without it is refused the way Marketing
  Cloud refuses it), `DateValue`s without an offset read as server time (UTC-6), with `Z` or an offset
  converted; or `ContinueRequest` with a RequestID;
- pages of 2,500 objects (`OverallStatus` `MoreDataAvailable`, then `OK`); each page served moves the
  cursor on, so a continuation whose answer was lost is not served again;
- functional errors as HTTP 200 `OverallStatus: Error: ...` (unknown object type, a property the object
  does not have, a filter on one, an unknown RequestID);
- fault knobs on the route `soap` (key: the object type): `status` 429 -> `Rate Limited` fault (code 17),
  401 -> `Security` fault, 503 -> a bare 503, 200 -> `Error: Timeout expired.`, any other -> a `Server`
  fault (code 2); `latency`, `reset`, `expire_token` (every token becomes expired), `malformed` (the
  answer cut in half after the cursor moved), `truncate` (cut mid-body, connection reset).
"""

import datetime as dt
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from lxml import etree

from .faults import Fault
from .filters import FilterError, parse_server_datetime
from .tracking import OBJECTS, Prop, TrackingObject

if TYPE_CHECKING:
    from .server import Handler

PARTNER_NS = "http://exacttarget.com/wsdl/partnerAPI"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
_ENVELOPES = (SOAP_ENV, "http://www.w3.org/2003/05/soap-envelope")
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
BATCH = 2500
SERVER_OFFSET = dt.timedelta(hours=-6)
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
_OPS = {"equals": "=", "notEquals": "<>", "greaterThan": ">", "lessThan": "<", "greaterThanOrEqual": ">=",
        "lessThanOrEqual": "<="}


class _Answer(Exception):
    """Raised inside the endpoint to answer at once: a fault, or a 200 with an `Error` status."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def handles(raw_path: str) -> bool:
    return urlsplit(raw_path).path.rstrip("/").lower() == "/service.asmx"


def _envelope(body: str) -> bytes:
    return ('<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/'
            'envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/'
            f'XMLSchema"><soap:Body>{body}</soap:Body></soap:Envelope>').encode()


def fault(code: str, message: str, api_code: int | None = None) -> _Answer:
    """A SOAP fault, shaped as Salesforce documents them (only Server faults carry an `apifault`)."""
    detail = "" if api_code is None else (
        f'<detail><apifault xmlns="urn:fault.partner.exacttarget.com"><Code>{api_code}</Code>'
        f"<Message>{escape(message)}</Message></apifault></detail>")
    ns = f' xmlns:q0="{WSSE}"' if code.startswith("q0:") else ""
    return _Answer(500, _envelope(f"<soap:Fault><faultcode{ns}>{code}</faultcode><faultstring>{escape(message)}"
                                  f"</faultstring><faultactor>/Service.asmx</faultactor>{detail}</soap:Fault>"))


def response(status: str, request_id: str | None, results: str = "") -> bytes:
    rid = f"<RequestID>{request_id}</RequestID>" if request_id else ""
    return _envelope(f'<RetrieveResponseMsg xmlns="{PARTNER_NS}"><OverallStatus>{escape(status)}</OverallStatus>'
                     f"{rid}{results}</RetrieveResponseMsg>")


def error_status(message: str) -> _Answer:
    return _Answer(200, response(f"Error: {message}", None))


# -- the request --------------------------------------------------------------------------------------


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _child(node: etree._Element, name: str) -> etree._Element | None:
    return next((c for c in node if _local(c.tag) == name), None)


def _parse(body: bytes) -> tuple[str | None, etree._Element]:
    """(token, RetrieveRequest) of a request; a body that is not one is a Client fault."""
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError:
        raise fault("soap:Client", "Server was unable to read request.") from None
    if root.getroottree().docinfo.doctype or root.tag not in {f"{{{ns}}}Envelope" for ns in _ENVELOPES}:
        raise fault("soap:Client", "Server was unable to read request.")
    header, soap_body = _child(root, "Header"), _child(root, "Body")
    token = next((el.text for el in (header.iter() if header is not None else ())
                  if _local(el.tag) == "fueloauth"), None)
    msg = soap_body[0] if soap_body is not None and len(soap_body) else None
    request = _child(msg, "RetrieveRequest") if msg is not None and _local(msg.tag) == "RetrieveRequestMsg" else None
    if request is None:
        raise fault("soap:Client", "Unable to handle request without a valid action parameter. Please supply a "
                    "valid soap action.")
    return (token or "").strip() or None, request


def _value(prop: Prop, raw: str) -> object:
    if prop.kind == "date":
        return parse_server_datetime(raw, SERVER_OFFSET)
    if prop.kind == "int":
        return int(raw)
    if prop.kind == "bool":
        return raw.strip().lower() in ("true", "1")
    return raw


def _simple(obj: TrackingObject, node: etree._Element, params: list[object]) -> str:
    name = (_child(node, "Property").text or "") if _child(node, "Property") is not None else ""
    op_node = _child(node, "SimpleOperator")
    op = (op_node.text or "").strip() if op_node is not None else ""
    prop = obj.prop(name.strip())
    if prop is None or prop.name == "Client.ID":
        # Wording of this error is the sandbox's (the request-property error's pattern).
        raise error_status(f"The Filter Property(s) {name} do not match with the fields of {obj.name} retrieve")
    raw = [c.text or "" for c in node if _local(c.tag) in ("Value", "DateValue")]
    try:
        values = [_value(prop, v) for v in raw]
    except (FilterError, ValueError):
        raise fault("soap:Client", f"Server was unable to read request. The value of {name} is not valid.") \
            from None
    need = {"isNull": 0, "isNotNull": 0, "between": 2}.get(op, 1)
    if op not in (*_OPS, "isNull", "isNotNull", "between", "IN", "like"):
        raise fault("soap:Client", f"Server was unable to read request. Instance validation error: '{op}' is not "
                    "a valid value for SimpleOperators.")
    if (op == "IN" and not values) or (op != "IN" and len(values) != need):
        raise error_status(f"The {op} operator of the filter on {name} needs {need} value(s), got {len(values)}")
    params += values
    col = prop.sql
    if op in ("isNull", "isNotNull"):
        return f"({col} IS {'NOT ' if op == 'isNotNull' else ''}NULL)"
    if op == "between":
        return f"({col} BETWEEN ? AND ?)"
    if op == "IN":
        return f"({col} IN ({', '.join('?' for _ in values)}))"
    return f"({col} LIKE ?)" if op == "like" else f"({col} {_OPS[op]} ?)"


def where_sql(obj: TrackingObject, node: etree._Element | None, params: list[object]) -> str:
    """A `Filter` as parameterised SQL over the object's table."""
    if node is None:
        return "TRUE"
    kind = _local(node.get(XSI_TYPE, "").rsplit(":", 1)[-1]) or ""
    if kind == "SimpleFilterPart":
        return _simple(obj, node, params)
    if kind == "ComplexFilterPart":
        logical_node = _child(node, "LogicalOperator")
        logical = (logical_node.text or "").strip().upper() if logical_node is not None else ""
        if logical not in ("AND", "OR"):
            raise error_status(f"Incorrect syntax near the keyword '{logical or 'LogicalOperator'}'.")
        left = where_sql(obj, _child(node, "LeftOperand"), params)
        right = where_sql(obj, _child(node, "RightOperand"), params)
        return f"({left} {logical} {right})"
    # Marketing Cloud's answer to an operand without its xsi:type.
    raise error_status("Unknown filter of type FilterPart encountered.")


# -- serving ------------------------------------------------------------------------------------------


def _authorize(handler: "Handler", token: str | None) -> None:
    server = handler.server
    with server.lock:
        expiry = server.tokens.get(token or "")
    if expiry is None:
        raise fault("q0:Security", "Login failed")
    if expiry < time.monotonic():
        raise fault("q0:Security", "Token Expired")


def _retrieve(handler: "Handler", request: etree._Element) -> bytes:
    cursors = handler.server.sandbox.soap_cursors
    cont = _child(request, "ContinueRequest")
    if cont is not None and (cont.text or "").strip():
        handler.server.count("soap_continue")
        request_id = (cont.text or "").strip()
        page = cursors.next_page(request_id, BATCH)
        if page is None:
            raise error_status("The RequestID sent through ContinueRequest does not exist.")
        more, xml = page
        return response("MoreDataAvailable" if more else "OK", request_id, xml)
    type_node = _child(request, "ObjectType")
    name = (type_node.text or "").strip() if type_node is not None else ""
    obj = OBJECTS.get(name)
    if obj is None:
        raise error_status(f"Unable to find a handler for object type: {name}. Object types are case-sensitive, "
                           "check spelling.")
    asked = [(p.text or "").strip() for p in request if _local(p.tag) == "Properties"]
    unknown = [p for p in asked if obj.prop(p) is None]
    if unknown or not asked:
        raise error_status(f"The Request Property(s) {', '.join(unknown) or '(none)'} do not match with the "
                           f"fields of {obj.name} retrieve")
    params: list[object] = []
    where = where_sql(obj, _child(request, "Filter"), params)
    request_id = cursors.open(obj, [obj.prop(p) for p in dict.fromkeys(asked)], where, params)  # type: ignore[misc]
    more, xml = cursors.next_page(request_id, BATCH) or (False, "")
    return response("MoreDataAvailable" if more else "OK", request_id, xml)


def _fault_answer(handler: "Handler", injected: Fault) -> _Answer | None:
    """The answer an injected fault gives before the request is handled (None: handle it)."""
    if injected.kind == "expire_token":
        with handler.server.lock:
            for token in handler.server.tokens:
                handler.server.tokens[token] = 0.0
        return None
    if injected.kind != "status":
        return None
    status = injected.status or 500
    if status == 429:
        return fault("soap:Server", "Rate Limited", 17)
    if status == 401:
        return fault("q0:Security", "Login failed")
    if status == 503:
        retry = {"Retry-After": str(injected.retry_after)} if injected.retry_after is not None else {}
        return _Answer(503, b"Service Unavailable", retry)
    if status == 200:
        return _Answer(200, response("Error: Timeout expired.  The timeout period elapsed prior to completion "
                                     "of the operation or the server is not responding.", None))
    return fault("soap:Server", "Unplanned Outage", injected.errorcode or 2)


def _send(handler: "Handler", status: int, body: bytes, headers: dict[str, str] | None = None,
          sent: int | None = None) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "text/xml; charset=utf-8")
    handler.send_header("Content-Length", str(len(body) if sent is None else sent))
    for k, v in (headers or {}).items():
        handler.send_header(k, v)
    handler.end_headers()
    handler.wfile.write(body)


def serve(handler: "Handler") -> None:
    """Answer one POST to /Service.asmx."""
    body = handler._body()
    server = handler.server
    server.count("soap")
    try:
        token, request = _parse(body)
        cont = _child(request, "ContinueRequest")
        type_node = _child(request, "ObjectType")
        key = (server.sandbox.soap_cursors.object_type((cont.text or "").strip()) if cont is not None
               else (type_node.text or "").strip() if type_node is not None else None)
        injected = server.faults.take_request("soap", key)
        for f in injected:
            if f.kind == "latency":
                time.sleep(f.latency_ms / 1000)
        other = next((f for f in injected if f.kind != "latency"), None)
        if other is not None:
            server.count("faults_served")
            if other.kind == "reset":
                handler._reset()
                return
            answer = _fault_answer(handler, other)
            if answer is not None:
                raise answer
        _authorize(handler, token)
        payload = _retrieve(handler, request)
    except _Answer as answer:
        _send(handler, answer.status, answer.body, answer.headers)
        return
    except Exception as exc:  # a sandbox bug surfaces as a Server fault naming it, not a dropped socket
        bug = fault("soap:Server", f"Internal sandbox error: {type(exc).__name__}: {exc}", 2)
        _send(handler, bug.status, bug.body)
        return
    if other is not None and other.kind == "malformed":
        _send(handler, 200, payload[: len(payload) // 2])
    elif other is not None and other.kind == "truncate":
        _send(handler, 200, payload[: len(payload) // 2], sent=len(payload))
        handler.wfile.flush()
        handler._reset()
    else:
        _send(handler, 200, payload)

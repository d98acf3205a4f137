"""The HTTP side of the sandbox: Marketing Cloud's routes, bodies, status codes and faults.

Routes served:
- `POST /v2/token` (auth host; JSON client credentials; with `token_limit` set, requests beyond it within
  `token_window_s` get 429 / errorcode 50200, as Salesforce may answer)
- `GET  /data/v1/customobjectdata/key/{key}/rowset` and `/token/{requestToken}/rowset`
- `GET  /data/v1/customobjects?$search=`, `/data/v1/customobjects/{id}`, `/data/v1/customobjects/{id}/fields`
- `POST /hub/v1/dataevents/key:{key}/rowset` (synchronous upsert)
- `/_sandbox/health|stats|faults|queries` (control plane, not Marketing Cloud)

Query strings are decoded as a URI (RFC 3986), so `+` is a plus sign, not a space (see `uri_query`).
"""

import datetime as dt
import json
import secrets
import socket
import struct
import threading
import time
import uuid
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import orjson

from . import soap
from .faults import Fault, FaultBook
from .filters import FilterError

if TYPE_CHECKING:
    from . import MarketingCloudSandbox

DOC = "https://developer.salesforce.com/docs/atlas.en-us.mc-apis.meta/mc-apis/error-handling.htm"
MAX_PAGE_SIZE = 2500
REQUEST_TOKEN_TTL = dt.timedelta(minutes=20)  # lifetime of a rowset requestToken: UNCONFIRMED
PACKAGE_SCOPE = "data_extensions_read data_extensions_write"
STAT_KEYS = ("token", "rowset_key", "rowset_token", "fields", "search", "upsert", "faults_served")
NOT_AUTHORIZED = {"documentation": DOC, "errorcode": 0, "message": "Not Authorized"}
BAD_CLIENT_ID = {"error": "invalid_client",
                 "error_description": "Invalid client ID. Use the client ID in Marketing Cloud Installed Packages.",
                 "error_uri": "https://developer.salesforce.com/docs"}
BAD_SECRET = {"error": "invalid_client",
              "error_description": "Client authentication failed. Make sure that the client ID and client secret "
                                   "are valid and that the package is installed and enabled.",
              "error_uri": "https://developer.salesforce.com/docs"}


class _Reply(Exception):
    """Raised inside a route to answer with a status and a JSON body."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def _error(status: int, message: str, errorcode: int) -> _Reply:
    return _Reply(status, {"message": message, "errorcode": errorcode, "documentation": DOC})


def _fault_reply(fault: Fault, route: str) -> _Reply:
    """The status and body Marketing Cloud sends for `fault.status`."""
    status = fault.status or 500
    if status == 429:
        # The token endpoint throttles with 50200; REST routes with 50100 + Retry-After.
        if fault.errorcode == 50200 or (route == "token" and fault.errorcode is None):
            return _Reply(429, {"message": "Your requests are temporarily blocked.", "errorcode": 50200,
                                "documentation": DOC})
        retry = fault.retry_after if fault.retry_after is not None else 5
        return _Reply(429, {"message": "Rate limit exceeded", "errorcode": 50100, "retryAfter": retry,
                            "documentation": DOC}, {"Retry-After": str(retry)})
    if status == 503:
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        return _Reply(503, {"message": "Service Unavailable", "errorcode": fault.errorcode or 50300,
                            "documentation": DOC}, headers)
    if status == 401:
        return _Reply(401, BAD_SECRET if route == "token" else NOT_AUTHORIZED)
    if status == 403:
        return _Reply(403, {"message": "Insufficient privileges to complete this action.",
                            "errorcode": fault.errorcode or 20002, "documentation": DOC})
    if status == 404:
        return _error(404, "Object not found.", fault.errorcode or 30003)
    if 400 <= status < 500:
        return _error(status, "Bad request.", fault.errorcode or 10000)
    # The body of a generic 5xx is UNCONFIRMED; this follows the documented error shape.
    return _Reply(status, {"message": "Internal Server Error", "errorcode": fault.errorcode or 0,
                           "documentation": DOC})


def uri_query(raw: str) -> dict[str, str]:
    """The query string decoded as a URI query (RFC 3986), the way a strict server reads it.

    Percent-escapes are decoded; a `+` stays a `+`. Reading `+` as a space is a rule of HTML form
    submission (application/x-www-form-urlencoded, https://url.spec.whatwg.org/#urlencoded-parsing), not
    of URIs (https://www.rfc-editor.org/rfc/rfc3986#section-3.4), and no public Marketing Cloud client
    relies on it: they send spaces as `%20`. So `$filter=ModifiedDate+gte+'...'` reaches the filter parser
    as written and is refused like any other malformed filter.
    """
    return {k.lower(): v for k, v in parse_qsl(raw.replace("+", "%2B"), keep_blank_values=True)}


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sandbox: "MarketingCloudSandbox") -> None:
        super().__init__(address, Handler)
        self.sandbox = sandbox
        self.faults = FaultBook()
        self.stats: Counter[str] = Counter(dict.fromkeys(STAT_KEYS, 0))
        self.stats_lock = threading.Lock()
        self.tokens: dict[str, float] = {}  # access token -> monotonic expiry
        self.token_requests: deque[float] = deque()  # monotonic times of recent token requests
        self.pinned: dict[str, Any] = {}  # requestToken -> PinnedQuery
        self.lock = threading.Lock()
        self.queries: deque[str] = deque(maxlen=10_000)  # raw query strings, newest last

    def count(self, name: str) -> None:
        with self.stats_lock:
            self.stats[name] += 1

    def record_query(self, raw: str) -> None:
        """Keep the query string as sent and count how its spaces were encoded (`%20` or `+`)."""
        if not raw:
            return
        with self.stats_lock:
            self.queries.append(raw)
            if "+" in raw:
                self.stats["query_plus"] += 1
            if "%20" in raw:
                self.stats["query_pct20"] += 1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SandboxServer

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: tests and `make run` would drown in access logs

    # -- plumbing -------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        if soap.handles(self.path):  # the SOAP endpoint answers in XML (soap.py)
            soap.serve(self)
            return
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = body if isinstance(body, bytes) else orjson.dumps(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(payload)

    def _reset(self) -> None:
        """Drop the connection without an answer (RST), as a load balancer or a crashed node does."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        query = uri_query(parts.query)
        body = self._body()
        route, key, handler = self._route(method, path)
        if route != "control":
            self.server.record_query(parts.query)
        if handler is None:
            self._send(404, {"message": f"Resource not found: {path}", "errorcode": 30003, "documentation": DOC})
            return
        other: Fault | None = None
        if route != "control":
            other = self._take_fault(route, key, path)
            if other is not None and not self._apply_fault(other, route, query, path):
                return  # the fault was the answer
        try:
            status, payload, headers = handler(query, body, path)
        except _Reply as reply:
            self._send(reply.status, reply.body, reply.headers)
            return
        except Exception as exc:  # a sandbox bug must surface as a 500 with a message, not a dropped socket
            self._send(500, {"message": f"Internal Server Error: {type(exc).__name__}: {exc}", "errorcode": 0,
                             "documentation": DOC})
            return
        if route != "control" and other is not None and other.kind in ("malformed", "truncate"):
            self._send_broken(other.kind, status, payload)
            return
        self._send(status, payload, headers)

    def _take_fault(self, route: str, key: str | None, path: str) -> Fault | None:
        """Count the request, sleep through its latency faults; the other fault scheduled for it, if any."""
        self.server.count(route)
        if route == "rowset":
            self.server.count("rowset_token" if "/token/" in path else "rowset_key")
        faults = self.server.faults.take_request(route, key)
        for fault in faults:
            if fault.kind == "latency":
                time.sleep(fault.latency_ms / 1000)
        other = next((f for f in faults if f.kind != "latency"), None)
        if other is not None:
            self.server.count("faults_served")
        return other

    def _apply_fault(self, fault: Fault, route: str, query: dict[str, str], path: str) -> bool:
        """Act out a fault before the route runs; False when the fault itself was the answer."""
        if fault.kind == "status":
            reply = _fault_reply(fault, route)
            self._send(reply.status, reply.body, reply.headers)
            return False
        if fault.kind == "reset":
            self._reset()
            return False
        if fault.kind == "expire_token":
            with self.server.lock:
                self.server.tokens.clear()
        if fault.kind == "mutate":
            self._mutate_for(query, path, fault)
        return True

    def _send_broken(self, kind: str, status: int, payload: Any) -> None:
        """Half of the answer: as a complete but cut body (`malformed`), or cut off by a reset (`truncate`)."""
        raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        if kind == "malformed":
            self._send(status, raw[: max(1, len(raw) // 2)])
            return
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw[: len(raw) // 2])
        self.wfile.flush()
        self._reset()

    def _route(self, method: str, path: str) -> tuple[str, str | None, Any]:
        segs = [s for s in path.split("/") if s]
        if method == "POST" and segs == ["v2", "token"]:
            return "token", None, self.token
        if segs[:1] == ["_sandbox"]:
            return "control", None, self.control
        if method == "GET" and len(segs) == 6 and segs[:4] == ["data", "v1", "customobjectdata", "key"] and segs[5] == "rowset":
            return "rowset", segs[4], self.rowset_by_key
        if method == "GET" and len(segs) == 6 and segs[:4] == ["data", "v1", "customobjectdata", "token"] and segs[5] == "rowset":
            pinned = self.server.pinned.get(segs[4])
            return "rowset", pinned.key if pinned else None, self.rowset_by_token
        if method == "GET" and segs[:3] == ["data", "v1", "customobjects"] and len(segs) in (3, 4, 5):
            if len(segs) == 5 and segs[4] != "fields":
                return "", None, None
            return ("search" if len(segs) == 3 else "fields"), None, self.customobjects
        if method == "POST" and len(segs) == 5 and segs[:3] == ["hub", "v1", "dataevents"] and segs[4] == "rowset":
            return "upsert", segs[3].removeprefix("key:"), self.upsert
        return "", None, None

    # -- auth -----------------------------------------------------------------------------------------

    def token(self, query: dict[str, str], body: bytes, path: str) -> tuple[int, Any, dict[str, str]]:
        sandbox = self.server.sandbox
        self._throttle_token_requests()
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            # Clients send JSON; whether form encoding is accepted is UNCONFIRMED, so it is refused here.
            raise _Reply(400, {"error": "invalid_request", "error_description": "The request body must be JSON.",
                               "error_uri": "https://developer.salesforce.com/docs"}) from None
        if data.get("grant_type") != "client_credentials":
            raise _Reply(400, {"error": "unsupported_grant_type",
                               "error_description": "Use the grant type client_credentials.",
                               "error_uri": "https://developer.salesforce.com/docs"})
        if data.get("client_id") != sandbox.client_id:
            raise _Reply(401, BAD_CLIENT_ID)
        if not secrets.compare_digest(str(data.get("client_secret", "")), sandbox.client_secret):
            raise _Reply(401, BAD_SECRET)
        account = data.get("account_id")
        if account not in (None, "") and str(account) != sandbox.account_id:
            # Body UNCONFIRMED; mcecli's knowledge base only quotes "not accessible for this account".
            raise _Reply(401, {"error": "invalid_grant",
                               "error_description": f"The account {account} is not accessible for this account.",
                               "error_uri": "https://developer.salesforce.com/docs"})
        token = "eyJ" + secrets.token_urlsafe(96)
        with self.server.lock:
            self.server.tokens[token] = time.monotonic() + sandbox.token_ttl_seconds
        base = sandbox.url
        # Omitted scope = every scope of the package; a requested scope is granted as asked.
        scope = data.get("scope")
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 1079,
                     "scope": PACKAGE_SCOPE if scope is None else str(scope), "soap_instance_url": base,
                     "rest_instance_url": base}, {}

    def _throttle_token_requests(self) -> None:
        """Salesforce asks for one token request per 20 minutes per client and "may" block more with 429 /
        errorcode 50200 (https://help.salesforce.com/s/articleView?id=mc_overview_limits_api.htm). With
        `token_limit` set, the sandbox does block: more than that many requests within `token_window_s`."""
        sandbox = self.server.sandbox
        if sandbox.token_limit is None:
            return
        now = time.monotonic()
        with self.server.lock:
            recent = self.server.token_requests
            recent.append(now)
            while recent and recent[0] <= now - sandbox.token_window_s:
                recent.popleft()
            blocked = len(recent) > sandbox.token_limit
        if blocked:
            self.server.count("token_blocked")
            raise _Reply(429, {"message": "Your requests are temporarily blocked.", "errorcode": 50200,
                               "documentation": DOC})

    def _authorize(self, query: dict[str, str]) -> None:
        if "access_token" in query:
            raise _error(401, "Authorization token invalid on URL or request body. Pass it in the header.", 40004)
        header = self.headers.get("Authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        with self.server.lock:
            expiry = self.server.tokens.get(token)
            if expiry is not None and expiry < time.monotonic():
                del self.server.tokens[token]
                expiry = None
        if expiry is None:
            raise _Reply(401, NOT_AUTHORIZED)

    # -- rows -----------------------------------------------------------------------------------------

    def _page_size(self, query: dict[str, str]) -> int:
        raw = query.get("$pagesize", query.get("pagesize", str(MAX_PAGE_SIZE)))
        try:
            size = int(raw)
        except ValueError:
            raise _error(400, f"$pageSize must be a number, got {raw!r}", 10003) from None
        return max(1, min(size, MAX_PAGE_SIZE))

    def _page_no(self, query: dict[str, str]) -> int:
        raw = query.get("$page", query.get("page", "1"))
        try:
            return max(1, int(raw))
        except ValueError:
            raise _error(400, f"$page must be a number, got {raw!r}", 10003) from None

    def rowset_by_key(self, query: dict[str, str], body: bytes, path: str) -> tuple[int, Any, dict[str, str]]:
        self._authorize(query)
        key = [s for s in path.split("/") if s][4]
        tenant = self.server.sandbox.tenant
        de = tenant.get(key)
        if de is None:
            # Status UNCONFIRMED; the message is what clients match on.
            raise _error(404, f"Data Extension cannot be retrieved for key {key}.", 30003)
        now = dt.datetime.now(dt.timezone.utc)
        try:
            pinned = tenant.pin(de, filter_text=query.get("$filter") or None,
                                order_text=query.get("$orderby") or None, page_size=self._page_size(query),
                                fields_text=query.get("$fields") or None, expires=now + REQUEST_TOKEN_TTL)
        except FilterError as exc:
            raise _error(400, str(exc), 10000) from None
        token = str(uuid.uuid4())
        with self.server.lock:
            self._sweep(now)
            self.server.pinned[token] = pinned
        return 200, self._envelope(token, pinned, self._page_no(query)), {}

    def rowset_by_token(self, query: dict[str, str], body: bytes, path: str) -> tuple[int, Any, dict[str, str]]:
        self._authorize(query)
        token = [s for s in path.split("/") if s][4]
        with self.server.lock:
            pinned = self.server.pinned.get(token)
        if pinned is None or pinned.expires < dt.datetime.now(dt.timezone.utc):
            # The shape of this error is not documented: the REST error shape, as for the other routes.
            raise _error(404, f"Request token {token} was not found or has expired.", 30003)
        return 200, self._envelope(token, pinned, self._page_no(query)), {}

    def _sweep(self, now: dt.datetime) -> None:
        """Forget expired request tokens (and the oldest, beyond a bound; their results are cached apart)."""
        for t in [t for t, q in self.server.pinned.items() if q.expires < now]:
            del self.server.pinned[t]
        while len(self.server.pinned) > 10_000:
            del self.server.pinned[next(iter(self.server.pinned))]

    def _envelope(self, token: str, pinned: Any, page: int) -> bytes:
        """The rowset envelope, `items` spliced in already encoded, absent when empty."""
        tenant = self.server.sandbox.tenant
        de = tenant.get(pinned.key)
        if de is None:  # dropped since the token was issued
            raise _error(404, f"Data Extension cannot be retrieved for key {pinned.key}.", 30003)
        count, items = tenant.page(pinned, page)
        links = {"self": f"/v1/customobjectdata/token/{token}/rowset?$page={page}"}
        if page * pinned.page_size < count:
            links["next"] = f"/v1/customobjectdata/token/{token}/rowset?$page={page + 1}"
        envelope = orjson.dumps({
            "links": links, "requestToken": token,
            "tokenExpireDateUtc": pinned.expires.replace(tzinfo=None).isoformat(timespec="milliseconds"),
            "customObjectId": de.id, "customObjectKey": de.key, "pageSize": pinned.page_size, "page": page,
            "count": count, "top": 0,
        })
        return envelope if items is None else envelope[:-1] + b',"items":' + items + b"}"

    def _mutate_for(self, query: dict[str, str], path: str, fault: Fault) -> None:
        segs = [s for s in path.split("/") if s]
        tenant = self.server.sandbox.tenant
        if segs[3] == "token":
            pinned = self.server.pinned.get(segs[4])
        else:
            de = tenant.get(segs[4])
            pinned = tenant.pin(de, filter_text=query.get("$filter") or None, order_text=None, page_size=1,
                                fields_text=None, expires=dt.datetime.now(dt.timezone.utc)) if de else None
        if pinned is not None:
            tenant.mutate(pinned, fault.mutation or "update", fault.n)

    # -- metadata -------------------------------------------------------------------------------------

    def customobjects(self, query: dict[str, str], body: bytes, path: str) -> tuple[int, Any, dict[str, str]]:
        self._authorize(query)
        tenant = self.server.sandbox.tenant
        segs = [s for s in path.split("/") if s]
        if len(segs) == 3:
            term = query.get("$search")
            if term is None:
                raise _error(400, "The $search parameter is required.", 10002)
            page = self._page_no(query)
            found = [d for d in tenant.data_extensions.values()
                     if term.lower() in d.key.lower() or term.lower() in d.name.lower()
                     or term.lower() in d.description.lower()]
            chunk = found[(page - 1) * 25: page * 25]  # the server ignores $pageSize here
            items = [{"id": d.id, "name": d.name, "key": d.key, "description": d.description,
                      "rowCount": tenant.count(d), "isSendable": d.sendable, "isTestable": False} for d in chunk]
            links = {"self": f"/v1/customobjects?$search={quote(term, safe='')}&$page={page}"}
            if page * 25 < len(found):
                links["next"] = f"/v1/customobjects?$search={quote(term, safe='')}&$page={page + 1}"
            return 200, {"count": len(found), "page": page, "pageSize": 25, "links": links, "items": items}, {}
        de = next((d for d in tenant.data_extensions.values() if d.id == segs[3]), None)
        if de is None:
            raise _error(404, "Identifying Guid is invalid or the data extension does not exist.", 30003)
        if len(segs) == 5:
            return 200, {"id": de.id, "fields": [f.to_json() for f in de.fields]}, {}
        return 200, {"id": de.id, "name": de.name, "key": de.key, "description": de.description,
                     "fieldCount": len(de.fields), "rowCount": tenant.count(de)}, {}

    def upsert(self, query: dict[str, str], body: bytes, path: str) -> tuple[int, Any, dict[str, str]]:
        self._authorize(query)
        key = [s for s in path.split("/") if s][3].removeprefix("key:")
        tenant = self.server.sandbox.tenant
        if tenant.get(key) is None:
            raise _error(404, f"Data Extension cannot be retrieved for key {key}.", 30003)
        try:
            rows = orjson.loads(body)
            flat = [{**(r.get("keys") or {}), **(r.get("values") or {})} for r in rows]
            tenant.upsert(key, flat)
        except (orjson.JSONDecodeError, AttributeError, TypeError, FilterError, StopIteration) as exc:
            raise _error(400, f"Invalid rows: {exc}", 10000) from None
        return 200, rows, {}

    # -- control plane --------------------------------------------------------------------------------

    def control(self, query: dict[str, str], body: bytes, path: str) -> tuple[int, Any, dict[str, str]]:
        what = [s for s in path.split("/") if s][1:]
        sandbox = self.server.sandbox
        method = self.command
        if what == ["health"]:
            return 200, {"status": "ok"}, {}
        if what == ["stats"]:
            return 200, sandbox.stats(), {}
        if what == ["queries"]:
            return 200, sandbox.queries(), {}
        if what == ["stats", "reset"] and method == "POST":
            sandbox.reset_stats()
            return 200, {}, {}
        if what == ["faults"]:
            if method == "GET":
                return 200, [f.to_json() for f in sandbox.faults.active()], {}
            if method == "DELETE":
                sandbox.clear_faults()
                return 200, [], {}
            try:
                data = json.loads(body or b"[]")
                sandbox.set_faults([Fault.from_json(f) for f in (data.get("faults", []) if isinstance(data, dict) else data)])
            except (ValueError, TypeError) as exc:
                raise _Reply(400, {"message": str(exc)}) from None
            return 200, [f.to_json() for f in sandbox.faults.active()], {}
        raise _Reply(404, {"message": f"unknown control route {path}"})

"""The HTTP core of both clients: one pooled session, the OAuth token, bounded retries, scrubbed errors.

Marketing Cloud and Experience Platform differ in their endpoints and error bodies, not in how a call is
made, so that part is written once:
- `send`: one exchange; timeouts, refused and dropped connections become the service's transient error;
- `call`: a call with the current bearer token; a 401 renews the token once and replays the call once,
  but only when the call is idempotent (a create that may have succeeded is never blindly repeated: the
  caller gets the transient error and decides); idempotent calls are retried by the retry policy;
- `with_retries`: the policy of `sfmc_assets.lib.retrying` (429 with `Retry-After`, 5xx, timeouts,
  dropped connections; exponential backoff with jitter, bounded in attempts and time), turning "gave up"
  into the service's error with the last failure's context;
- the client-credentials token request and its cache (`tokens.py`, shared across processes);
- `scrub`: the client secret and the current token are removed from any text a server sent back;
- `encode_query`: query strings with spaces as `%20` (RFC 3986), never `+`.
"""

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import orjson
import requests
from requests.adapters import HTTPAdapter

from sfmc_assets.lib.http.errors import ServiceError, Transient
from sfmc_assets.lib.http.tokens import SharedTokenFile, Token, TokenCache
from sfmc_assets.lib.retrying import GaveUp, LogSink, RetrySettings, call_with_retries, retry_after_seconds

T = TypeVar("T")
C = TypeVar("C", bound="ServiceClient")
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})


def encode_query(params: Mapping[str, Any], *, safe: str = "") -> str:
    """`a=1&b=x%20y`: percent-encoding per RFC 3986 (https://www.rfc-editor.org/rfc/rfc3986#section-2.1).

    `urlencode`'s default (and `requests`' `params=`) writes a space as `+`, which only HTML form decoding
    reads as a space; a server that decodes the query as a URI reads a literal `+`. Every public Marketing
    Cloud client found sends `%20`, so both clients send exactly that.
    """
    return urlencode(params, quote_via=quote, safe=safe)


def decode_json(response: requests.Response) -> Any:
    """The JSON body, or None when there is none or it is not JSON."""
    if not response.content:
        return None
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None


@dataclass(frozen=True)
class ServiceErrors:
    """The error classes a service raises; the core raises them with the service's own context."""

    base: type[ServiceError]
    transient: type[ServiceError]
    authentication: type[ServiceError]

    def __post_init__(self) -> None:
        if not issubclass(self.transient, Transient):
            raise TypeError(f"{self.transient.__name__} must derive from Transient")


@dataclass(frozen=True)
class ClientCredentials:
    """An OAuth 2.0 client-credentials grant: where to ask, what to send, how to explain a refusal."""

    issuer: str  # how messages name the token endpoint's owner ("Marketing Cloud", "IMS")
    url: str
    request: str  # how errors name the call ("POST v2/token")
    client_id: str
    secret: str = field(repr=False)
    payload: Mapping[str, str] = field(repr=False)  # the whole grant, secret included
    form_encoded: bool  # IMS takes a form, Marketing Cloud JSON
    hint: str  # what to check when the credentials are refused
    default_expires_in: float
    refresh_margin_s: float
    #: Fields of the token response the client needs besides the token (kept with it in the cache).
    extra_fields: tuple[str, ...] = ()


class ApiSession:
    """What a client needs to talk to one service as one OAuth client. Thread-safe."""

    def __init__(self, *, service: str, errors: ServiceErrors, credentials: ClientCredentials,
                 timeout: tuple[float, float], retry: RetrySettings, pool_size: int, log: LogSink,
                 token_store: SharedTokenFile | None = None) -> None:
        self.service = service
        self.errors = errors
        self.credentials = credentials
        self.timeout = timeout
        self.retry = retry
        self.log = log
        self.counters: Counter[str] = Counter()
        self.http = requests.Session()
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max(2, pool_size), max_retries=0)
        self.http.mount("http://", adapter)
        self.http.mount("https://", adapter)
        # A token request retries for at most `max_total_s`: waiting longer on another process means it is stuck.
        self.tokens = TokenCache(self._fetch_token, store=token_store, lock_timeout_s=retry.max_total_s + 60,
                                 log=log, counters=self.counters)

    def close(self) -> None:
        self.http.close()

    def scrub(self, text: str | None) -> str | None:
        """`text` without the client secret or the current token (defence in depth: servers do not echo
        them, but this text goes into errors and logs)."""
        if not text:
            return text
        current = self.tokens.current
        for secret in (self.credentials.secret, current.value if current else None):
            if secret:
                text = text.replace(secret, "***")
        return text

    # -- transport ------------------------------------------------------------------------------------

    def send(self, method: str, url: str, *, request: str, context: Mapping[str, Any],
             **kwargs: Any) -> requests.Response:
        """One HTTP exchange, body read; network-level failures become the service's transient error."""
        self.counters["http_requests"] += 1
        try:
            response = self.http.request(method, url, timeout=self.timeout, **kwargs)
            _ = response.content  # read now, so a connection cut mid-body is caught here as transient
            return response
        except requests.Timeout as exc:
            raise self.errors.transient(f"timed out after {self.timeout[1]:.0f}s ({type(exc).__name__})",
                                        request=request, **context) from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            cause = type(exc.__context__ or exc).__name__
            raise self.errors.transient(f"connection failed or dropped ({cause})", request=request,
                                        **context) from None

    def raise_if_transient(self, response: requests.Response, message: str, *, request: str,
                           context: Mapping[str, Any], **details: Any) -> None:
        """Raise the transient error a 429/5xx answer is, honouring its `Retry-After`."""
        if response.status_code not in TRANSIENT_STATUS:
            return
        body = decode_json(response)
        hint = body.get("retryAfter") if isinstance(body, Mapping) else None  # Marketing Cloud's 50100 body
        raise self.errors.transient(
            f"{self.service} answered {response.status_code}: {message}",
            retry_after=retry_after_seconds(response.headers.get("Retry-After"), hint),
            request=request, status=response.status_code, **context, **details,
        )

    def with_retries(self, fn: Callable[[], T], *, request: str, context: Mapping[str, Any],
                     gave_up: Callable[[GaveUp], Exception] | None = None) -> T:
        """`fn()` under the retry policy; when it runs out, the service's error naming the last failure."""
        try:
            return call_with_retries(fn, settings=self.retry, transient=Transient, counters=self.counters,
                                     log=self.log, service=self.service)
        except GaveUp as exc:
            if gave_up is not None:
                raise gave_up(exc) from None
            last = exc.last
            assert isinstance(last, ServiceError)
            known = {k: v for k, v in last.context().items() if v not in (None, "")}
            raise self.errors.base(
                f"gave up after {exc.attempts} attempt(s) in {exc.elapsed_s:.1f}s: {last.reason}",
                **{"request": request, **context, **known},
            ) from None

    def call(self, method: str, url: str, *, request: str, context: Mapping[str, Any], idempotent: bool,
             headers: Callable[[str], dict[str, str]], respond: Callable[[requests.Response], T],
             **kwargs: Any) -> T:
        """An authorised call: `respond` turns the answer into a result or raises the service's error.

        Idempotent calls are retried, and replayed once after a 401 with a renewed token. A call that is
        not idempotent is sent once; after a 401 the token is renewed and the transient error raised, so
        the caller can find out whether the call took effect before sending it again.
        """
        self.counters["api_calls"] += 1

        def attempt() -> T:
            for replay in (False, True):
                token = self.tokens.get().value
                response = self.send(method, url, request=request, context=context, headers=headers(token),
                                     **kwargs)
                if response.status_code != 401 or replay:
                    return respond(response)
                # Expired or revoked token: renew it once (other threads that met the same 401 then find
                # the new one), and replay only what is harmless to send twice.
                self.counters["token_renewals_after_401"] += 1
                self.tokens.get(stale=token)
                if not idempotent:
                    raise self.errors.transient(f"{self.service} rejected the token (renewed, request not "
                                                "replayed)", request=request, status=401, **context)
                self.counters["token_replays"] += 1
            raise AssertionError("unreachable")

        if idempotent:
            return self.with_retries(attempt, request=request, context=context)
        return attempt()

    # -- the token ------------------------------------------------------------------------------------

    def token(self) -> Token:
        """The current token (requested, shared or cached)."""
        return self.tokens.get()

    def _fetch_token(self) -> Token:
        creds = self.credentials
        body = self.with_retries(self._request_token, request=creds.request, context={})
        extra = {name: str(body.get(name) or "") for name in creds.extra_fields}
        missing = [name for name, value in extra.items() if not value]
        if missing:
            raise self.errors.base(f"the token response has no {', '.join(missing)}", request=creds.request)
        expires_in = float(body.get("expires_in") or creds.default_expires_in)
        return Token.issued(str(body["access_token"]), expires_in, margin_s=creds.refresh_margin_s,
                            extra=extra)

    def _request_token(self) -> dict[str, Any]:
        creds = self.credentials
        self.counters["token_requests"] += 1
        # `data=` sends application/x-www-form-urlencoded (IMS requires it); `json=` sends JSON.
        body_kw = {"data": dict(creds.payload)} if creds.form_encoded else {"json": dict(creds.payload)}
        response = self.send("POST", creds.url, request=creds.request, context={}, **body_kw)
        body = decode_json(response)
        status = response.status_code
        if status == 200 and isinstance(body, dict) and body.get("access_token"):
            return body
        message, code = _oauth_error(body)
        message = self.scrub(message)
        self.raise_if_transient(response, f"{message or 'no message'} (token endpoint)",
                                request=creds.request, context={}, code=code)
        if status in (400, 401, 403):
            raise self.errors.authentication(
                f"{creds.issuer} refused the credentials of client id {creds.client_id!r}: "
                f"{message or 'no message'} ({creds.hint})",
                request=f"POST {creds.url}", status=status, code=code)
        if status == 200:
            raise self.errors.transient("the token response is not JSON with an access_token",
                                        request=creds.request, status=200)
        raise self.errors.base(f"unexpected answer from the token endpoint: {message or response.reason}",
                               request=f"POST {creds.url}", status=status, code=code)


def _oauth_error(body: Any) -> tuple[str | None, Any]:
    """(message, code) of an OAuth `{error, error_description}` body (or a service's own error shape)."""
    if not isinstance(body, Mapping):
        return None, None
    message = body.get("error_description") or body.get("message") or body.get("error")
    code = body.get("error") or body.get("errorcode") or body.get("error_code")
    return (str(message) if message is not None else None), code


class ServiceClient:
    """The teardown and counters of a client built on an `ApiSession` (`self.session`)."""

    session: ApiSession

    @property
    def counters(self) -> Counter[str]:
        """Calls, HTTP requests, retries, token requests... of this client, for run metadata."""
        return self.session.counters

    def close(self) -> None:
        self.session.close()

    def __enter__(self: C) -> C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

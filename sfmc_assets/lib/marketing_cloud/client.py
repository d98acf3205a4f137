"""HTTP client for Marketing Cloud's REST API: server-to-server OAuth, retries, JSON calls.

Protocol facts (reference: shared/reference/marketing-cloud-api.md):
- `POST {auth base}/v2/token` with a JSON body; the response names `rest_instance_url` (ending in `/`),
  and `expires_in` (1079 s in practice, the real lifetime is 20 min).
- A token is meant to be reused for its lifetime (one token request per 20 min is the documented limit),
  so it is cached and refreshed five minutes ahead of expiry; a 401 on a REST call refreshes it once and
  replays the request once.
- 429 (with `Retry-After`), 5xx, timeouts, dropped connections and malformed bodies are transient: retried
  with exponential backoff and jitter, bounded in attempts and in total time. `invalid_client` is not.
"""

import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

import orjson
import requests
from requests.adapters import HTTPAdapter

from sfmc_assets.lib.marketing_cloud.errors import (
    AuthenticationError,
    DataExtensionNotFoundError,
    MarketingCloudError,
    RetryableError,
)
from sfmc_assets.lib.retrying import GaveUp, LogSink, RetrySettings, call_with_retries, retry_after_seconds

_AUTH_HOST = re.compile(r"^(?P<sub>[a-z0-9-]+)\.auth\.marketingcloudapis\.com$", re.IGNORECASE)
_SUBDOMAIN = re.compile(r"^[a-z0-9-]+$", re.IGNORECASE)
_TRANSIENT_STATUS = {429, 500, 502, 503, 504}
#: Refresh this long before the reported expiry: Salesforce recommends refreshing ~5 minutes ahead.
TOKEN_REFRESH_MARGIN_S = 300.0
#: Rowset pages in flight per data extension by default. Marketing Cloud publishes no concurrency or
#: per-minute REST limit ("does not enforce concurrent call restrictions", but spikes get 429 50100/50200,
#: which are retried); Salesforce Support's informal guidance is <= 2,500 REST calls/min. With pages taking
#: >= 250 ms server-side, 8 in flight is <= 32 calls/s (1,920/min), under it, and enough for the client's
#: own work to hide behind the latency (bench `extract_latency`: 4 in flight was latency-bound at ~3x a
#: sequential reader).
DEFAULT_MAX_CONCURRENCY = 8

T = TypeVar("T")


class MalformedBodyError(ValueError):
    """Raised by a body parser given to `get_parsed` when a 200 body is not what it must be."""


def normalize_auth_base_uri(value: str) -> str:
    """The authentication base URI in canonical form, ending with `/`.

    Accepts what users copy from the Installed Package page (`https://<sub>.auth.marketingcloudapis.com/`,
    possibly with `v2/token` or other path after it, which Adobe's guide says to remove), the bare
    subdomain (`mcxxxxxxxx`, which Adobe's UI calls the "base endpoint"), or any other http(s) URL (the
    local sandbox).
    """
    value = value.strip()
    if not value:
        raise ValueError("the Marketing Cloud authentication base URI is empty")
    if "://" not in value:
        if _SUBDOMAIN.match(value):
            return f"https://{value.lower()}.auth.marketingcloudapis.com/"
        value = "https://" + value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {value!r}")
    if _AUTH_HOST.match(parts.hostname or ""):
        return f"https://{parts.netloc.lower()}/"
    path = parts.path.rstrip("/")
    if path.endswith("/v2/token"):
        path = path[: -len("/v2/token")].rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{path}/"


def _error_fields(body: Any, *secrets: str | None) -> tuple[str | None, Any]:
    """Marketing Cloud's `{message, errorcode}` (REST) or `{error, error_description}` (token endpoint).

    Any of `secrets` a server echoes back is masked (defence in depth: neither Marketing Cloud nor the
    sandbox does, but the text goes into errors and logs).
    """
    if not isinstance(body, Mapping):
        return None, None
    message = body.get("message") or body.get("error_description") or body.get("error")
    text = str(message) if message is not None else None
    for secret in secrets:
        if text and secret:
            text = text.replace(secret, "***")
    return text, body.get("errorcode", body.get("error"))


def json_object(content: bytes) -> dict[str, Any]:
    """A body that must be a JSON object; anything else is a `MalformedBodyError` (retried)."""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise MalformedBodyError("are not a JSON object")
    return body


def _decode(response: requests.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None


class MarketingCloudClient:
    """One tenant (or sandbox) connection: token cache, pooled session, bounded retries, call counters.

    Thread-safe: pages are fetched from several threads, sharing one token and one connection pool.
    """

    def __init__(
        self,
        auth_base_uri: str,
        client_id: str,
        client_secret: str,
        account_id: str | None = None,
        *,
        timeout: tuple[float, float] = (10.0, 120.0),
        retry: RetrySettings | None = None,
        pool_size: int = 8,
        logger: LogSink | None = None,
    ) -> None:
        self.auth_base_uri = normalize_auth_base_uri(auth_base_uri)
        self.client_id = client_id
        self._client_secret = client_secret
        self.account_id = account_id or None
        self.timeout = timeout
        self.retry = retry or RetrySettings()
        self.log: LogSink = logger or logging.getLogger("sfmc_assets.marketing_cloud")
        self.counters: Counter[str] = Counter()
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max(2, pool_size), max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._token_lock = threading.Lock()
        self._token: str | None = None
        self._token_deadline = 0.0
        self._rest_base: str | None = None

    def __repr__(self) -> str:
        return (
            f"MarketingCloudClient(auth_base_uri={self.auth_base_uri!r}, client_id={self.client_id!r}, "
            f"client_secret='***', account_id={self.account_id!r})"
        )

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> "MarketingCloudClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- authentication -------------------------------------------------------------------------------

    @property
    def rest_base(self) -> str:
        """The tenant's REST base URL (from the token response), ending with `/`."""
        self._access_token()
        assert self._rest_base is not None
        return self._rest_base

    def _access_token(self, *, stale: str | None = None) -> str:
        """A valid token: cached, refreshed ahead of expiry, or renewed when `stale` was rejected."""
        with self._token_lock:
            if self._token and stale == self._token:
                self._token = None  # the server rejected it: renew even if our clock says it is fresh
            if self._token and time.monotonic() < self._token_deadline:
                return self._token
            body = self._with_retries(self._request_token, request="POST v2/token", data_extension=None)
            self._token = str(body["access_token"])
            expires_in = float(body.get("expires_in") or 1079)
            self._token_deadline = time.monotonic() + max(30.0, expires_in - TOKEN_REFRESH_MARGIN_S)
            rest = str(body.get("rest_instance_url") or "")
            if not rest:
                raise MarketingCloudError("token response has no rest_instance_url", request="POST v2/token")
            self._rest_base = rest if rest.endswith("/") else rest + "/"
            return self._token

    def _request_token(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._client_secret,
        }
        if self.account_id:
            payload["account_id"] = self.account_id
        self.counters["token_requests"] += 1
        response = self._send("POST", self.auth_base_uri + "v2/token", json=payload,
                              request="POST v2/token", data_extension=None)
        body = _decode(response)
        if response.status_code == 200 and isinstance(body, dict) and body.get("access_token"):
            return body
        message, code = _error_fields(body, self._client_secret, self._token)
        if response.status_code in _TRANSIENT_STATUS:
            raise RetryableError(
                f"token endpoint answered {response.status_code}: {message or 'no message'}",
                retry_after=retry_after_seconds(response.headers.get("Retry-After"), body),
                request="POST v2/token", status=response.status_code, errorcode=code,
            )
        if response.status_code in (400, 401, 403):
            raise AuthenticationError(
                f"Marketing Cloud refused the credentials of client id {self.client_id!r}: "
                f"{message or 'no message'} (check SFMC_CLIENT_ID, SFMC_CLIENT_SECRET, SFMC_ACCOUNT_ID and "
                "that the installed package is enabled)",
                request=f"POST {self.auth_base_uri}v2/token", status=response.status_code, errorcode=code,
            )
        if response.status_code == 200:
            raise RetryableError("token response is not JSON with an access_token",
                                 request="POST v2/token", status=200)
        raise MarketingCloudError(
            f"unexpected answer from the token endpoint: {message or response.reason}",
            request=f"POST {self.auth_base_uri}v2/token", status=response.status_code, errorcode=code,
        )

    # -- transport ------------------------------------------------------------------------------------

    def _send(self, method: str, url: str, *, request: str, data_extension: str | None,
              **kwargs: Any) -> requests.Response:
        """One HTTP exchange; network-level failures become `RetryableError`."""
        self.counters["http_requests"] += 1
        try:
            response = self._session.request(method, url, timeout=self.timeout, **kwargs)
            # requests reads the body lazily; read it here so a cut connection is caught as transient.
            _ = response.content
            return response
        except requests.Timeout as exc:
            raise RetryableError(f"timed out after {self.timeout[1]:.0f}s ({type(exc).__name__})",
                                 request=request, data_extension=data_extension) from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            cause = type(exc.__context__ or exc).__name__
            raise RetryableError(f"connection failed or dropped ({cause})",
                                 request=request, data_extension=data_extension) from None

    def _with_retries(self, fn: Any, *, request: str, data_extension: str | None) -> Any:
        try:
            return call_with_retries(fn, settings=self.retry, transient=RetryableError, counters=self.counters,
                                     log=self.log, service="Marketing Cloud")
        except GaveUp as gave_up:
            exc = gave_up.last
            assert isinstance(exc, RetryableError)
            raise MarketingCloudError(
                f"gave up after {gave_up.attempts} attempt(s) in {gave_up.elapsed_s:.1f}s: {exc.reason}",
                data_extension=exc.data_extension or data_extension, request=exc.request or request,
                status=exc.status, errorcode=exc.errorcode,
            ) from None

    # -- REST calls -----------------------------------------------------------------------------------

    def get_json(self, path: str, params: Mapping[str, Any] | None = None, *,
                 data_extension: str | None = None) -> dict[str, Any]:
        """GET a REST path (relative to the REST base, e.g. `data/v1/...`) and decode its JSON body."""
        return self.get_parsed(path, params, json_object, data_extension=data_extension)

    def get_parsed(self, path: str, params: Mapping[str, Any] | None, parse: Callable[[bytes], T], *,
                   data_extension: str | None = None) -> T:
        """GET a REST path and turn a 200 body into `parse(body)`, within the retries.

        `parse` raises `MalformedBodyError` for a body that is not what the endpoint sends (cut short,
        corrupted): that is retried like a 5xx, so a parser that is faster than `orjson` (rowset pages are
        decoded by Polars, which releases the GIL) keeps the same guarantees.
        """
        query = ("?" + urlencode(params, safe="$,'")) if params else ""
        request = f"GET {path}{query}"

        def attempt() -> T:
            for replay in (False, True):
                token = self._access_token()
                url = self.rest_base + path.lstrip("/") + query
                response = self._send("GET", url, request=request, data_extension=data_extension,
                                      headers={"Authorization": f"Bearer {token}"})
                if response.status_code == 200:
                    try:
                        return parse(response.content)
                    except MalformedBodyError as exc:
                        raise RetryableError(
                            f"malformed response body ({len(response.content)} bytes {exc})",
                            request=request, data_extension=data_extension, status=200,
                        ) from None
                body = _decode(response)
                if response.status_code == 401 and not replay:
                    # Expired or revoked token: renew once and replay once (FuelSDK issues, reference §1.5).
                    self.counters["token_replays"] += 1
                    self._access_token(stale=token)
                    continue
                self._check(response, body, request=request, data_extension=data_extension)
            raise AssertionError("unreachable")

        self.counters["api_calls"] += 1
        return self._with_retries(attempt, request=request, data_extension=data_extension)

    def _check(self, response: requests.Response, body: Any, *, request: str,
               data_extension: str | None) -> None:
        """Raise the error a non-200 answer means (transient ones as `RetryableError`)."""
        status = response.status_code
        message, code = _error_fields(body, self._client_secret, self._token)
        message = message or response.reason or "no message"
        if status in _TRANSIENT_STATUS:
            raise RetryableError(
                f"Marketing Cloud answered {status}: {message}",
                retry_after=retry_after_seconds(response.headers.get("Retry-After"), body if isinstance(body, dict) else None),
                request=request, data_extension=data_extension, status=status, errorcode=code,
            )
        if status == 401:
            raise MarketingCloudError(
                f"not authorised even with a fresh token: {message} (does the installed package grant "
                "`data_extensions_read` for this business unit?)",
                request=request, data_extension=data_extension, status=status, errorcode=code,
            )
        if "cannot be retrieved for key" in message.lower() or (status == 404 and "customobjectdata/key/" in request):
            raise DataExtensionNotFoundError(
                f"no data extension with this external key: {message}",
                request=request, data_extension=data_extension, status=status, errorcode=code,
            )
        raise MarketingCloudError(
            f"Marketing Cloud rejected the request: {message}",
            request=request, data_extension=data_extension, status=status, errorcode=code,
        )

"""HTTP client for Marketing Cloud's REST API: server-to-server OAuth, retries, JSON calls.

The transport (session, token cache, retries, scrubbing) is the shared core in `sfmc_assets.lib.http`;
this module adds what is Marketing Cloud's own:
- `POST {auth base}/v2/token` with a JSON body; the response names `rest_instance_url` (the REST base) and
  `expires_in` (1079 s in practice; the real lifetime is 20 minutes). Salesforce asks for one token request
  per 20 minutes per client and answers more with 429 / errorcode 50200
  (https://help.salesforce.com/s/articleView?id=mc_overview_limits_api.htm), so the token is cached,
  shared across processes when a cache folder is given, and renewed five minutes ahead of expiry; a 401
  on a REST call renews it once and replays the GET once.
- Query strings are percent-encoded with `%20` for spaces (the `$filter` of a rowset read has several).
- Error bodies are `{message, errorcode, documentation}`; a key that names no data extension is said so.
"""

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import orjson
import requests

from sfmc_assets.lib.http import ApiSession, ClientCredentials, ServiceClient, ServiceErrors, SharedTokenFile
from sfmc_assets.lib.http.session import decode_json, encode_query
from sfmc_assets.lib.marketing_cloud.errors import (
    AuthenticationError,
    DataExtensionNotFoundError,
    MarketingCloudError,
    RetryableError,
)
from sfmc_assets.lib.retrying import LogSink, RetrySettings

_AUTH_HOST = re.compile(r"^(?P<sub>[a-z0-9-]+)\.auth\.marketingcloudapis\.com$", re.IGNORECASE)
_SUBDOMAIN = re.compile(r"^[a-z0-9-]+$", re.IGNORECASE)
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


@dataclass(frozen=True)
class SoapAccess:
    """What a SOAP call needs from the token response: the token and the tenant's SOAP base URL.

    Both come from one token response, so a SOAP reader never pairs a token with another tenant's host.
    """

    token: str = field(repr=False)
    soap_base: str  # `soap_instance_url`, ending with `/` (the endpoint is `{soap_base}Service.asmx`)


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


def _error_fields(body: Any) -> tuple[str | None, Any]:
    """Marketing Cloud's REST error `{message, errorcode, documentation}`."""
    if not isinstance(body, Mapping):
        return None, None
    message = body.get("message") or body.get("error_description") or body.get("error")
    return (str(message) if message is not None else None), body.get("errorcode", body.get("error"))


def json_object(content: bytes) -> dict[str, Any]:
    """A body that must be a JSON object; anything else is a `MalformedBodyError` (retried)."""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise MalformedBodyError("are not a JSON object")
    return body


class MarketingCloudClient(ServiceClient):
    """One tenant (or sandbox) connection: token cache, pooled session, bounded retries, call counters.

    Thread-safe: pages are fetched from several threads, sharing one token and one connection pool. With a
    `token_cache` folder the token is also shared with the other processes of the deployment (one token
    request per token lifetime, as Salesforce asks).
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
        token_cache: Path | None = None,
    ) -> None:
        self.auth_base_uri = normalize_auth_base_uri(auth_base_uri)
        self.client_id = client_id
        self.account_id = account_id or None
        self.retry = retry or RetrySettings()
        self.log: LogSink = logger or logging.getLogger("sfmc_assets.marketing_cloud")
        grant = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
        if self.account_id:
            grant["account_id"] = self.account_id
        credentials = ClientCredentials(
            issuer="Marketing Cloud", url=self.auth_base_uri + "v2/token", request="POST v2/token",
            client_id=client_id, secret=client_secret, payload=grant, form_encoded=False,
            hint="check SFMC_CLIENT_ID, SFMC_CLIENT_SECRET, SFMC_ACCOUNT_ID and that the installed package "
                 "is enabled",
            default_expires_in=1079, refresh_margin_s=TOKEN_REFRESH_MARGIN_S, extra_fields=("rest_instance_url", "soap_instance_url"),
        )
        store = None
        if token_cache is not None:
            identity = f"marketing-cloud|{self.auth_base_uri}|{client_id}|{self.account_id or ''}"
            store = SharedTokenFile(token_cache, identity=identity, secret=client_secret)
        self.session = ApiSession(service="Marketing Cloud", errors=_ERRORS, credentials=credentials,
                                  timeout=timeout, retry=self.retry, pool_size=pool_size, log=self.log,
                                  token_store=store)

    def __repr__(self) -> str:
        return (
            f"MarketingCloudClient(auth_base_uri={self.auth_base_uri!r}, client_id={self.client_id!r}, "
            f"client_secret='***', account_id={self.account_id!r})"
        )

    @property
    def rest_base(self) -> str:
        """The tenant's REST base URL (from the token response), ending with `/`."""
        rest = self.session.token().extra["rest_instance_url"]
        return rest if rest.endswith("/") else rest + "/"

    def soap_access(self, *, stale: str | None = None) -> SoapAccess:
        """The shared token and the SOAP base URL, for a SOAP reader using this client's token.

        `stale` is a token the SOAP endpoint just refused (a `Token Expired` fault): it is renewed even if
        the local clock says it is still fresh, once for every thread that met the same refusal.
        """
        token = self.session.tokens.get(stale=stale) if stale else self.session.token()
        if not token.extra.get("soap_instance_url"):  # cached by a version that did not keep it: renew once
            token = self.session.tokens.get(stale=token.value)
        soap = token.extra["soap_instance_url"]
        return SoapAccess(token.value, soap if soap.endswith("/") else soap + "/")

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
        query = ("?" + encode_query(params, safe="$,'")) if params else ""
        request = f"GET {path}{query}"
        context = {"data_extension": data_extension}

        def respond(response: requests.Response) -> T:
            if response.status_code == 200:
                try:
                    return parse(response.content)
                except MalformedBodyError as exc:
                    raise RetryableError(f"malformed response body ({len(response.content)} bytes {exc})",
                                         request=request, data_extension=data_extension, status=200) from None
            raise self._refusal(response, request=request, data_extension=data_extension)

        return self.session.call(
            "GET", self.rest_base + path.lstrip("/") + query, request=request, context=context,
            idempotent=True, respond=respond,
            headers=lambda token: {"Authorization": f"Bearer {token}"},
        )

    def _refusal(self, response: requests.Response, *, request: str,
                 data_extension: str | None) -> MarketingCloudError:
        """The error a non-200 answer means (transient ones are raised as `RetryableError`)."""
        status = response.status_code
        body = decode_json(response)
        message, code = _error_fields(body)
        message = self.session.scrub(message) or response.reason or "no message"
        context = {"request": request, "data_extension": data_extension, "status": status, "code": code}
        self.session.raise_if_transient(response, message, request=request,
                                        context={"data_extension": data_extension}, code=code)
        if status == 401:
            return MarketingCloudError(f"not authorised even with a fresh token: {message} (does the installed "
                                       "package grant `data_extensions_read` for this business unit?)", **context)
        if "cannot be retrieved for key" in message.lower() or (status == 404 and "customobjectdata/key/" in request):
            return DataExtensionNotFoundError(f"no data extension with this external key: {message}", **context)
        return MarketingCloudError(f"Marketing Cloud rejected the request: {message}", **context)


_ERRORS = ServiceErrors(base=MarketingCloudError, transient=RetryableError, authentication=AuthenticationError)

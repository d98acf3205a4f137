"""HTTP client for Experience Platform batch ingestion: IMS OAuth, gateway headers, safe retries, publish.

The transport (session, token cache, retries, scrubbing) is the shared core in `sfmc_assets.lib.http`;
this module adds what is Platform's own:
- `POST {ims}/ims/token/v3`, form-encoded `grant_type=client_credentials`, `client_id`, `client_secret`,
  `scope`; `expires_in` is in seconds (86399) and there is no refresh token
  (https://developer.adobe.com/developer-console/docs/guides/authentication/ServerToServerAuthentication/ims).
  The token is renewed 500 s ahead of expiry (aepp's margin) and shared across processes when a cache
  folder is given.
- Every Platform call carries `Authorization`, `x-api-key` (= client id), `x-gw-ims-org-id` and
  `x-sandbox-name` (the sandbox's lowercase name); gateway refusals carry an `error_code`
  (https://experienceleague.adobe.com/en/docs/experience-platform/landing/troubleshooting).
- Idempotency decides retries: the file PUT replaces the file at its path, COMPLETE is documented as safe
  to retry, ABORT of an aborted batch and every GET change nothing: these are retried on 429/5xx/timeouts.
  `POST /batches` is not idempotent (a replayed create makes a second batch), see `create_batch`.
- A batch is live once it reaches `success`/`active`; `replay.predecessors` (`"$<id>"`, reason `replace`)
  makes the new batch replace the old ones, which is how a re-published partition stays single
  (https://experienceleague.adobe.com/en/docs/experience-platform/ingestion/batch/api-overview).
"""

import contextlib
import logging
import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import requests

from sfmc_assets.lib.experience_platform.errors import (
    AccessDeniedError,
    AuthenticationError,
    BatchCreateError,
    BatchFailedError,
    BatchNotFoundError,
    BatchStuckError,
    DatasetNotFoundError,
    ExperiencePlatformError,
    FileTooLargeError,
    RetryableError,
)
from sfmc_assets.lib.http import ApiSession, ClientCredentials, ServiceClient, ServiceErrors, SharedTokenFile
from sfmc_assets.lib.http.session import decode_json, encode_query
from sfmc_assets.lib.retrying import GaveUp, LogSink, RetrySettings

IMS_URL = "https://ims-na1.adobelogin.com"
PLATFORM_URL = "https://platform.adobe.io"
#: The scope string commonly used for AEP credentials; Adobe does not document one list for every credential, so the real
#: value should be copied from the credential's page in the Adobe Developer Console.
DEFAULT_SCOPES = "openid,session,AdobeID,read_organizations,additional_info.projectedProductContext"
#: Small-file PUT limit (batch-ingestion.yaml: "Due to gateway size and timeout limits"); a larger day is
#: published as several files of one batch rather than through the large-file (chunked) upload, which
#: Adobe's own Python client marks deprecated.
SMALL_FILE_LIMIT_BYTES = 256 * 1024 * 1024
#: What one batch may hold. Platform fails a batch over 25,000 files or 1 TB at ingestion and does not
#: guarantee timely ingestion above 10,000 files or 100 GB
#: (https://experienceleague.adobe.com/en/docs/experience-platform/ingestion/guardrails); the client keeps
#: to the older, stricter limits (1,500 files, 100 GB), which a day of one data extension never nears.
MAX_FILES_PER_BATCH = 1_500
MAX_BATCH_BYTES = 100 * 1024**3
#: Renew the token this long before IMS says it expires (aepp renews at `issue_time + expires_in - 500 s`).
TOKEN_REFRESH_MARGIN_S = 500.0
#: Batch tag naming what a batch holds (e.g. `campaigns/2026-10-01`), to find the live batch to replace.
#: Not `acp_`/`adobe`-prefixed: those tag names are Platform's own
#: (https://experienceleague.adobe.com/en/docs/experience-platform/catalog/api/filter-data#filter-by-tag).
LABEL_TAG = "sfmcAssetsLabel"
#: Catalog's clock may differ from ours; batch lookups by creation time look this far further back.
CLOCK_SKEW_MS = 15 * 60 * 1000

SUCCESS_STATUSES = frozenset({"success", "active"})  # Platform uses both for a live batch
#: Final states other than success; `inactive`/`deleted` mean the batch was reverted meanwhile.
FAILED_STATUSES = frozenset({"failed", "failure", "aborted", "abandoned", "inactive", "deleted"})
#: Not finished yet: a batch in one of these may still go live.
IN_FLIGHT_STATUSES = ("loading", "staging", "processing", "queued")

_IMPORT = "/data/foundation/import"
_CATALOG = "/data/foundation/catalog"
_SANDBOX_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")

# What the gateway's `error_code`s mean for the person fixing the configuration
# (https://experienceleague.adobe.com/en/docs/experience-platform/landing/troubleshooting).
_GATEWAY_HINTS = {
    "403010": "the request carried no OAuth token",
    "403000": "the x-api-key header is missing",
    "403003": "the x-api-key (client id {client_id!r}) is not the API key of this credential",
    "400003": "a required header is missing (x-gw-ims-org-id or x-sandbox-name)",
    "403025": (
        "the credential is not entitled to org {org_id!r} / sandbox {sandbox_name!r}: check the org id and "
        "that the sandbox name is the sandbox's lowercase name (e.g. 'prod'), and that the credential's "
        "product profile grants access to that sandbox"
    ),
    "403027": "org id {org_id!r} is malformed or has no Experience Platform product profile",
}


@dataclass(frozen=True)
class PublishResult:
    """What one `publish` did: the batch, its final state and Platform's record counts."""

    batch_id: str
    dataset_id: str
    label: str
    external_id: str
    status: str
    records_in: int
    records_out: int
    records_failed: int
    file_bytes: int
    duration_s: float
    predecessors: tuple[str, ...] = ()
    #: How many Parquet files the batch holds (a large day is split into several).
    files: int = 1
    #: Errors Platform reported on a batch that still succeeded (partial ingestion); empty otherwise.
    errors: tuple[dict[str, Any], ...] = field(default=())

    @classmethod
    def of(cls, final: Mapping[str, Any], created: Mapping[str, Any], *, label: str, dataset_id: str,
           parts: Sequence[bytes], predecessors: Sequence[str], duration_s: float) -> "PublishResult":
        """The result of a publish from the batch as created and as Catalog shows it at the end."""
        metrics = final.get("metrics") or {}
        return cls(
            batch_id=str(created["id"]), dataset_id=dataset_id, label=label,
            external_id=str(created.get("externalId")), status=str(final.get("status")),
            records_in=int(metrics.get("inputRecordCount") or 0),
            records_out=int(metrics.get("outputRecordCount") or 0),
            records_failed=int(metrics.get("failedRecordCount") or 0),
            file_bytes=sum(map(len, parts)), files=len(parts), duration_s=duration_s,
            predecessors=tuple(predecessors),
            errors=tuple(dict(e) for e in final.get("errors") or () if isinstance(e, Mapping)),
        )

    def as_metadata(self) -> dict[str, Any]:
        """Plain values for run metadata / logs."""
        return {
            "batch_id": self.batch_id,
            "dataset_id": self.dataset_id,
            "label": self.label,
            "external_id": self.external_id,
            "status": self.status,
            "records_in": self.records_in,
            "records_out": self.records_out,
            "records_failed": self.records_failed,
            "file_bytes": self.file_bytes,
            "files": self.files,
            "duration_s": round(self.duration_s, 3),
            "replaced_batches": list(self.predecessors),
        }


def _error_fields(body: Any) -> tuple[str | None, str | None, str | None]:
    """(code, title, detail) from the gateway `{error_code, message}`, the problem `{title, detail}` or
    the IMS `{error, error_description}` shapes."""
    if not isinstance(body, Mapping):
        return None, None, None
    code = body.get("error_code") or body.get("error") or body.get("code")
    detail = body.get("detail") or body.get("message") or body.get("error_description")
    title = body.get("title")
    return (
        str(code) if code is not None else None,
        str(title) if title is not None else None,
        str(detail) if detail is not None else None,
    )


def _unwrap(body: Any, object_id: str) -> dict[str, Any] | None:
    """Catalog answers `{id: object}`; return the object with its `id` set."""
    if not isinstance(body, Mapping):
        return None
    obj = body.get(object_id)
    if not isinstance(obj, Mapping):
        return None
    return {**obj, "id": obj.get("id") or object_id}


def _dataset_of(batch: Mapping[str, Any]) -> str | None:
    for related in batch.get("relatedObjects") or ():
        if isinstance(related, Mapping) and related.get("type") == "dataSet":
            return str(related.get("id"))
    return None


def _has_label(batch: Mapping[str, Any], label: str) -> bool:
    values = (batch.get("tags") or {}).get(LABEL_TAG)
    return isinstance(values, list) and label in values


def _matches(batch: Mapping[str, Any], dataset_id: str, label: str | None, external_id: str | None) -> bool:
    """Whether a listed batch really is what the filters asked for."""
    return (_dataset_of(batch) in (None, dataset_id)
            and (label is None or _has_label(batch, label))
            and (external_id is None or batch.get("externalId") == external_id))


def _file_names(stem: str, count: int) -> list[str]:
    """`stem.parquet` for one file; `stem/part-00000.parquet`... for several (paths may hold folders)."""
    if stem.endswith(".parquet"):
        stem = stem[: -len(".parquet")]
    stem = re.sub(r"[^A-Za-z0-9._=-]+", "_", stem).strip("_") or "batch"
    return [f"{stem}.parquet"] if count == 1 else [f"{stem}/part-{i:05d}.parquet" for i in range(count)]


def _tag_value(label: str) -> str:
    """`label` as a Catalog tag filter value, where `,` separates filters and `*` is a wildcard."""
    if not label or any(c in label for c in ",*"):
        raise ValueError(f"batch label {label!r} must be non-empty and hold no ',' or '*' (Catalog's tag "
                         "filter syntax)")
    return label


def _now_ms() -> int:
    return int(time.time() * 1000)


class ExperiencePlatformClient(ServiceClient):
    """One org + sandbox connection: token cache, pooled session, bounded retries, call counters.

    Plain Python (no Dagster) so it can be used from a script, an asset or a test alike. Thread-safe. With a
    `token_cache` folder the IMS token is shared with the other processes of the deployment.
    """

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        org_id: str,
        sandbox_name: str = "prod",
        scopes: str | Sequence[str] = DEFAULT_SCOPES,
        ims_url: str = IMS_URL,
        platform_url: str = PLATFORM_URL,
        timeout: tuple[float, float] = (10.0, 300.0),
        retry: RetrySettings | None = None,
        max_file_bytes: int = SMALL_FILE_LIMIT_BYTES,
        logger: LogSink | None = None,
        token_cache: Path | None = None,
    ) -> None:
        sandbox_name = sandbox_name.strip()
        if not _SANDBOX_NAME.match(sandbox_name):
            # The header takes the sandbox's lowercase name, not its display title.
            raise ValueError(
                f"sandbox_name {sandbox_name!r} is not a sandbox name: use the lowercase name shown in the "
                "sandbox list (e.g. 'prod' or 'dev-marketing'), not its title"
            )
        if not org_id.endswith("@AdobeOrg"):
            raise ValueError(f"org_id {org_id!r} should look like 'XXXX@AdobeOrg'")
        self.client_id = client_id
        self.org_id = org_id
        self.sandbox_name = sandbox_name
        self.scopes = scopes if isinstance(scopes, str) else ",".join(scopes)
        self.ims_url = ims_url.rstrip("/")
        self.platform_url = platform_url.rstrip("/")
        self.retry = retry or RetrySettings(max_attempts=6)
        self.max_file_bytes = max_file_bytes
        self.log: LogSink = logger or logging.getLogger("sfmc_assets.experience_platform")
        credentials = ClientCredentials(
            issuer="IMS", url=f"{self.ims_url}/ims/token/v3", request="POST /ims/token/v3", client_id=client_id,
            secret=client_secret, form_encoded=True,
            payload={"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret,
                     "scope": self.scopes},
            hint="check the OAuth Server-to-Server credential's client id, client secret and scopes",
            default_expires_in=86399, refresh_margin_s=TOKEN_REFRESH_MARGIN_S,
        )
        store = None
        if token_cache is not None:
            identity = f"experience-platform|{self.ims_url}|{client_id}|{self.scopes}"
            store = SharedTokenFile(token_cache, identity=identity, secret=client_secret)
        self.session = ApiSession(service="Experience Platform", errors=_ERRORS, credentials=credentials,
                                  timeout=timeout, retry=self.retry, pool_size=8, log=self.log,
                                  token_store=store)

    @classmethod
    def from_discovery(cls, info: Mapping[str, Any], **kwargs: Any) -> "ExperiencePlatformClient":
        """A client for the local sandbox's `discovery()` document (same keys as the constructor)."""
        keys = ("ims_url", "platform_url", "client_id", "client_secret", "org_id", "sandbox_name", "scopes")
        return cls(**{k: info[k] for k in keys if k in info}, **kwargs)

    def __repr__(self) -> str:
        return (
            f"ExperiencePlatformClient(platform_url={self.platform_url!r}, client_id={self.client_id!r}, "
            f"client_secret='***', org_id={self.org_id!r}, sandbox_name={self.sandbox_name!r})"
        )

    # -- transport ------------------------------------------------------------------------------------

    def _headers(self, token: str, content_type: str | None) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {token}",
            "x-api-key": self.client_id,
            "x-gw-ims-org-id": self.org_id,
            "x-sandbox-name": self.sandbox_name,
            "Accept": "application/json",
        }
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def _call(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        ok: tuple[int, ...] = (200,),
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: bytes | None = None,
        content_type: str | None = None,
        dataset: str | None = None,
        batch_id: str | None = None,
        not_found: type[ExperiencePlatformError] = ExperiencePlatformError,
    ) -> Any:
        """One Platform call; retried (and replayed after a 401) only when `idempotent`.

        A call that is not idempotent and meets a 401 renews the token and raises `RetryableError`: the
        caller decides whether a replay is safe.
        """
        query = ("?" + encode_query(params, safe=":,*")) if params else ""
        request = f"{method} {path}{query}"
        if json_body is not None:
            data, content_type = orjson.dumps(json_body), "application/json"
        context = {"dataset": dataset, "batch_id": batch_id}
        return self.session.call(
            method, self.platform_url + path + query, request=request, context=context, idempotent=idempotent,
            headers=lambda token: self._headers(token, content_type), data=data,
            respond=lambda response: self._check(response, request=request, ok=ok, context=context,
                                                 not_found=not_found),
        )

    def _check(self, response: requests.Response, *, request: str, ok: tuple[int, ...],
               context: Mapping[str, Any], not_found: type[ExperiencePlatformError]) -> Any:
        """Return the decoded body of an accepted answer, or raise the error that explains the refusal."""
        status = response.status_code
        body = decode_json(response)
        if status in ok:
            return body
        code, title, detail = _error_fields(body)
        detail = self.session.scrub(detail)
        details: dict[str, Any] = {"code": code, "title": title, "detail": detail}
        message = detail or title or response.reason or "no message"
        self.session.raise_if_transient(response, message, request=request, context=context, **details)
        full = {"request": request, "status": status, **context, **details}
        if code in _GATEWAY_HINTS:
            hint = _GATEWAY_HINTS[code].format(client_id=self.client_id, org_id=self.org_id,
                                               sandbox_name=self.sandbox_name)
            raise AccessDeniedError(f"the Platform gateway refused the call: {hint} ({message})", **full)
        if status == 401:
            raise AccessDeniedError(f"not authorised even with a fresh token: {message}", **full)
        if status == 403:
            raise AccessDeniedError(f"forbidden: {message} (does the credential's product profile grant "
                                    "this permission in this sandbox?)", **full)
        if status == 413:
            raise FileTooLargeError(f"Platform refused the file as too large: {message}", **full)
        if status == 404:
            raise not_found(f"not found: {message}", **full)
        raise ExperiencePlatformError(f"Platform rejected the request: {message}", **full)

    # -- Catalog --------------------------------------------------------------------------------------

    def get_dataset(self, dataset_id: str) -> dict[str, Any]:
        """The Catalog dataset object (with `id`); `DatasetNotFoundError` if this sandbox has no such id."""
        body = self._call("GET", f"{_CATALOG}/dataSets/{quote(dataset_id, safe='')}", idempotent=True,
                          dataset=dataset_id, not_found=DatasetNotFoundError)
        dataset = _unwrap(body, dataset_id)
        if dataset is None:
            raise DatasetNotFoundError(f"Catalog answered without dataset {dataset_id}", dataset=dataset_id,
                                       request=f"GET {_CATALOG}/dataSets/{dataset_id}")
        return dataset

    def get_batch(self, batch_id: str, *, dataset_id: str | None = None) -> dict[str, Any]:
        """The Catalog batch object (status, metrics, errors, tags...) with `id`."""
        body = self._call("GET", f"{_CATALOG}/batches/{quote(batch_id, safe='')}", idempotent=True,
                          dataset=dataset_id, batch_id=batch_id, not_found=BatchNotFoundError)
        batch = _unwrap(body, batch_id)
        if batch is None:
            raise BatchNotFoundError(f"Catalog answered without batch {batch_id}", batch_id=batch_id,
                                     dataset=dataset_id, request=f"GET {_CATALOG}/batches/{batch_id}")
        return batch

    def find_batches(
        self,
        dataset_id: str,
        *,
        status: str | None = None,
        label: str | None = None,
        external_id: str | None = None,
        created_after_ms: int | None = None,
        page_size: int = 100,
        max_pages: int = 20,
    ) -> list[dict[str, Any]]:
        """The dataset's batches that match, newest first, selected by Catalog itself.

        Catalog's batch list filters on `dataSet`, `status`, `tags` (`name:value`), `externalId` and
        `createdAfter` (catalog.yaml, https://developer.adobe.com/experience-platform-apis/references/catalog/),
        so a day's batches are found however many newer batches the dataset holds. Each answer is checked
        again here (dataset, label, externalId): a Catalog that ignored a filter must not make a batch of
        another day look like this one's. More matches than `max_pages` pages is an error, not a guess.
        """
        params: dict[str, Any] = {"dataSet": dataset_id, "orderBy": "desc:created", "limit": page_size}
        if status:
            params["status"] = status
        if label is not None:
            params["tags"] = f"{LABEL_TAG}:{_tag_value(label)}"
        if external_id is not None:
            params["externalId"] = external_id
        if created_after_ms is not None:
            params["createdAfter"] = created_after_ms
        found: list[dict[str, Any]] = []
        for page in range(max_pages):
            body = self._call("GET", f"{_CATALOG}/batches", idempotent=True,
                              params={**params, "start": page * page_size}, dataset=dataset_id)
            items = list(body.items()) if isinstance(body, Mapping) else []
            batches = [{**b, "id": b.get("id") or i} for i, b in items if isinstance(b, Mapping)]
            found += [b for b in batches if _matches(b, dataset_id, label, external_id)]
            if len(items) < page_size:
                return found
        raise ExperiencePlatformError(
            f"more than {max_pages * page_size} batches match {params}: refusing to act on a partial list",
            dataset=dataset_id, request=f"GET {_CATALOG}/batches")

    def find_live_batches(self, dataset_id: str, label: str | None = None) -> list[dict[str, Any]]:
        """The dataset's successful (live) batches, optionally only those tagged with `label`.

        These are the replay predecessors of the next publish of the same label.
        """
        live: list[dict[str, Any]] = []
        for status in sorted(SUCCESS_STATUSES):  # `success` and `active` are used interchangeably
            live += self.find_batches(dataset_id, status=status, label=label)
        return live

    # -- Batch ingestion ------------------------------------------------------------------------------

    def create_batch(
        self,
        dataset_id: str,
        *,
        input_format: str = "parquet",
        replay_predecessors: Sequence[str] | None = None,
        tags: Mapping[str, Sequence[str]] | None = None,
        external_id: str | None = None,
        error_diagnostics: bool = True,
    ) -> dict[str, Any]:
        """Create a batch (status `loading`) and return it; its `externalId` is always set.

        `error_diagnostics` asks Platform for per-code failed-record counts and row-level error files
        (https://experienceleague.adobe.com/en/docs/experience-platform/ingestion/quality/error-diagnostics);
        without `partialIngestionPercent` any bad row still fails the whole batch.

        `POST /batches` is never blindly retried: if the answer is lost (5xx/429, timeout, dropped
        connection, 401), the batch may or may not exist. The client-generated `externalId` (batch-ingestion.yaml:
        "expected to be unique within your organization") lets us look it up via Catalog before deciding:
        found -> adopt it; not found -> create again with the same externalId (bounded by `retry`). After
        such a recovery, any other batch carrying the same externalId that is still `loading` (an in-flight
        request that landed late) is aborted. Whatever happens, an extra batch can never go live: only the
        batch returned here is ever COMPLETEd.
        """
        external_id = external_id or f"sfmc-assets-{uuid.uuid4().hex}"
        body = _batch_body(dataset_id, input_format, external_id, replay_predecessors, tags, error_diagnostics)
        creation = _Creation(self, dataset_id, body, since_ms=_now_ms())
        batch = self.session.with_retries(creation.attempt, request=f"POST {_IMPORT}/batches",
                                          context={"dataset": dataset_id}, gave_up=creation.gave_up)
        batch = {**batch, "externalId": batch.get("externalId") or external_id}
        if creation.failures:  # a request that landed late may have made a second batch: it must never go live
            self._abort_orphans(dataset_id, external_id, keep=str(batch["id"]), since_ms=creation.since_ms)
        return batch

    def _post_batch(self, dataset_id: str, body: Mapping[str, Any], since_ms: int) -> dict[str, Any]:
        """One `POST /batches`, never replayed by itself (`idempotent=False`)."""
        try:
            batch = self._call("POST", f"{_IMPORT}/batches", idempotent=False, ok=(200, 201), json_body=body,
                               dataset=dataset_id)
        except (DatasetNotFoundError, RetryableError):
            raise
        except ExperiencePlatformError as exc:
            # Platform answers 400 (not 404) for an unknown dataset (the exact status is not documented).
            if exc.status in (400, 404) and dataset_id in (exc.detail or ""):
                raise DatasetNotFoundError(f"cannot create a batch: {exc.detail}", dataset=dataset_id,
                                           request=exc.request, status=exc.status, code=exc.code,
                                           title=exc.title) from None
            raise
        if isinstance(batch, Mapping) and batch.get("id"):
            return dict(batch)
        # Created, but the answer does not say which batch: find it by externalId instead.
        found = self._lookup_created(dataset_id, str(body["externalId"]), since_ms)
        if found is None:
            raise BatchCreateError("batch creation answered without a batch id and no batch with our "
                                   f"externalId {body['externalId']} is listed",
                                   request=f"POST {_IMPORT}/batches", dataset=dataset_id)
        return found

    def _lookup_created(self, dataset_id: str, external_id: str, since_ms: int) -> dict[str, Any] | None:
        try:
            found = self.find_batches(dataset_id, external_id=external_id,
                                      created_after_ms=since_ms - CLOCK_SKEW_MS, max_pages=5)
        except ExperiencePlatformError as exc:
            # Without the lookup we cannot know whether the batch exists: do not create another one.
            raise BatchCreateError(
                f"batch creation failed and the Catalog lookup by externalId {external_id} failed too "
                f"({exc.reason}); a batch may exist in state `loading` (it will not go live)",
                dataset=dataset_id, request=exc.request, status=exc.status, code=exc.code,
            ) from None
        return found[-1] if found else None  # newest first: the oldest is the one first created

    def _abort_orphans(self, dataset_id: str, external_id: str, *, keep: str, since_ms: int) -> None:
        try:
            others = [b for b in self.find_batches(dataset_id, external_id=external_id,
                                                   created_after_ms=since_ms - CLOCK_SKEW_MS, max_pages=5)
                      if b["id"] != keep and b.get("status") == "loading"]
            for orphan in others:
                self.log.warning("aborting duplicate batch %s (same externalId %s as %s)",
                                 orphan["id"], external_id, keep)
                self.abort(orphan["id"], dataset_id=dataset_id)
        except ExperiencePlatformError as exc:
            # Best effort: an orphan is never completed, so it cannot go live; Platform abandons it.
            self.log.warning("could not check for duplicate batches of externalId %s: %s", external_id, exc)

    def upload_file(self, batch_id: str, dataset_id: str, file_name: str, data: bytes) -> None:
        """PUT one file (≤ `max_file_bytes`, 256 MB by default) into a `loading` batch.

        The PUT replaces whatever is at that path (batch-ingestion.yaml), so it is retried like a GET.
        """
        name = file_name.strip("/")
        if not name or any(part in ("", ".", "..") for part in name.split("/")):
            raise ValueError(f"invalid file name {file_name!r}")
        path = f"{_IMPORT}/batches/{quote(batch_id, safe='')}/datasets/{quote(dataset_id, safe='')}/files/" \
               f"{quote(name, safe='/')}"
        if len(data) > self.max_file_bytes:
            raise FileTooLargeError(
                f"{name} is {len(data)} bytes, over the {self.max_file_bytes}-byte small-file upload limit; "
                "split it into several files (e.g. by partition) of at most that size",
                dataset=dataset_id, batch_id=batch_id, request=f"PUT {path}",
            )
        self._call("PUT", path, idempotent=True, ok=(200, 201), data=data,
                   content_type="application/octet-stream", dataset=dataset_id, batch_id=batch_id,
                   not_found=BatchNotFoundError)
        self.counters["bytes_uploaded"] += len(data)

    def complete(self, batch_id: str, *, dataset_id: str | None = None) -> None:
        """Signal that all files are uploaded; Platform then processes the batch asynchronously."""
        self._action(batch_id, "COMPLETE", dataset_id)

    def abort(self, batch_id: str, *, dataset_id: str | None = None) -> None:
        """Abort a `loading`/`processing` batch so it never goes live (a final batch cannot be aborted)."""
        self._action(batch_id, "ABORT", dataset_id)

    def _action(self, batch_id: str, action: str, dataset_id: str | None) -> None:
        # No body, but a Content-Type all the same: Platform answers a POST without one with 400 "A valid
        # content-type must be specified" (https://experienceleague.adobe.com/en/docs/experience-platform/
        # landing/troubleshooting#valid-content-type-not-specified).
        self._call("POST", f"{_IMPORT}/batches/{quote(batch_id, safe='')}", idempotent=True,
                   params={"action": action}, content_type="application/json", dataset=dataset_id,
                   batch_id=batch_id, not_found=BatchNotFoundError)

    def wait_for_batch(
        self,
        batch_id: str,
        *,
        dataset_id: str | None = None,
        deadline_s: float = 900.0,
        poll_initial_s: float = 1.0,
        poll_max_s: float = 15.0,
        abort_on_timeout: bool = True,
    ) -> dict[str, Any]:
        """Poll the Catalog until the batch is final; return it when it succeeded.

        `failed` (and `aborted`/`abandoned`/reverted) raises `BatchFailedError` with Platform's error codes.
        Still not final at the deadline raises `BatchStuckError`; by default the batch is aborted first, so
        it cannot go live after the run has reported failure (a later re-run would otherwise end with two
        live batches for the same data: this one, and the re-run's, which could not name it as predecessor).
        """
        started = time.monotonic()
        poll = poll_initial_s
        while True:
            batch = self.get_batch(batch_id, dataset_id=dataset_id)
            status = str(batch.get("status") or "").lower()
            if status in SUCCESS_STATUSES:
                return batch
            if status in FAILED_STATUSES:
                raise _failed(batch, batch_id, status, dataset_id)
            elapsed = time.monotonic() - started
            if elapsed >= deadline_s:
                raise self._stuck(batch, batch_id, status, dataset_id, elapsed, deadline_s, abort_on_timeout)
            self.log.debug("batch %s is %s; polling again in %.1fs", batch_id, status, poll)
            time.sleep(min(poll, max(0.0, deadline_s - elapsed)))
            poll = min(poll * 1.6, poll_max_s)

    def _stuck(self, batch: Mapping[str, Any], batch_id: str, status: str, dataset_id: str | None,
               elapsed: float, deadline_s: float, abort: bool) -> "BatchStuckError":
        """The error for a batch not final at the deadline, aborting it first when asked to."""
        aborted, note = False, "left as is"
        if abort:
            try:
                self.abort(batch_id, dataset_id=dataset_id)
                aborted, note = True, "aborted so it cannot go live later"
            except ExperiencePlatformError as exc:
                note = f"abort failed too ({exc.reason}): it may still go live"
        return BatchStuckError(
            f"batch still {status or 'unknown'} after {elapsed:.1f}s (deadline {deadline_s:g}s); {note}",
            last_status=status, aborted=aborted, dataset=dataset_id or _dataset_of(batch), batch_id=batch_id,
        )

    # -- the whole protocol ---------------------------------------------------------------------------

    def publish(
        self,
        dataset_id: str,
        files: bytes | Sequence[bytes],
        *,
        label: str,
        predecessors: Sequence[str] | None = None,
        file_name: str | None = None,
        deadline_s: float = 900.0,
        poll_initial_s: float = 1.0,
        poll_max_s: float = 15.0,
    ) -> PublishResult:
        """Create a batch, upload its Parquet file(s), complete it and wait until it is live.

        `files`: one file, or several (`xdm.to_parquet_files` splits a large day) that make one batch, so
        a day stays one unit to replace. `label` names what the batch holds (e.g. `campaigns/2026-10-01`)
        and is stored as a batch tag. `predecessors`: the batches this one replaces. None = the live
        batches already published under the same label (so re-publishing a partition leaves exactly one
        live batch); `[]` = replace nothing. Any failure after the batch was created aborts it (unless
        Platform already failed it), so the replaced batches stay live and no half-published batch can go
        live later.
        """
        started = time.monotonic()
        _tag_value(label)  # a label Catalog's tag filter cannot find would never be replaced
        parts = [files] if isinstance(files, bytes | bytearray) else list(files)
        names = _file_names(file_name or label, len(parts))
        self._check_files(dataset_id, names, parts)
        # An idempotent call first: a missing dataset, a wrong sandbox or bad credentials surface here, before
        # the one call that must not be retried blindly.
        self.get_dataset(dataset_id)
        self._settle_orphans(dataset_id, label, deadline_s=deadline_s, poll_initial_s=poll_initial_s,
                             poll_max_s=poll_max_s)
        if predecessors is None:
            predecessors = [b["id"] for b in self.find_live_batches(dataset_id, label)]
        batch = self.create_batch(dataset_id, replay_predecessors=predecessors, tags={LABEL_TAG: [label]})
        batch_id = str(batch["id"])
        self.log.info("publishing %s (%d file(s), %d bytes) to dataset %s as batch %s, replacing %s", label,
                      len(parts), sum(map(len, parts)), dataset_id, batch_id, list(predecessors) or "nothing")
        final = self._fill_and_wait(batch_id, dataset_id, zip(names, parts, strict=True), deadline_s=deadline_s,
                                    poll_initial_s=poll_initial_s, poll_max_s=poll_max_s)
        result = PublishResult.of(final, batch, label=label, dataset_id=dataset_id, parts=parts,
                                  predecessors=predecessors, duration_s=time.monotonic() - started)
        self.log.info("batch %s is %s: %d records in, %d out, %d failed (%.1fs)", batch_id, result.status,
                      result.records_in, result.records_out, result.records_failed, result.duration_s)
        return result

    def _fill_and_wait(self, batch_id: str, dataset_id: str, files: Iterable[tuple[str, bytes]],
                       **wait: float) -> dict[str, Any]:
        """Upload, COMPLETE, wait for the verdict; on any failure the batch is aborted so it never goes live."""
        try:
            for name, data in files:
                self.upload_file(batch_id, dataset_id, name, data)
            self.complete(batch_id, dataset_id=dataset_id)
            return self.wait_for_batch(batch_id, dataset_id=dataset_id, **wait)
        except (BatchFailedError, BatchStuckError):
            raise  # final already, or aborted by wait_for_batch
        except BaseException as exc:
            self._abort_quietly(batch_id, dataset_id, exc)
            if isinstance(exc, ExperiencePlatformError):
                raise exc.with_context(dataset=dataset_id, batch_id=batch_id) from None
            raise

    def _check_files(self, dataset_id: str, names: Sequence[str], parts: Sequence[bytes]) -> None:
        """Refuse, before any batch exists, what Platform would refuse or fail."""
        if not parts or not all(parts):
            raise ValueError("refusing to publish an empty file (Platform fails 0-byte files, code 106)")
        for name, data in zip(names, parts, strict=True):
            if len(data) > self.max_file_bytes:
                raise FileTooLargeError(
                    f"{name} is {len(data)} bytes, over the {self.max_file_bytes}-byte small-file upload limit; "
                    "split the day into smaller files (xdm.to_parquet_files)", dataset=dataset_id)
        total = sum(map(len, parts))
        if len(parts) > MAX_FILES_PER_BATCH or total > MAX_BATCH_BYTES:
            raise FileTooLargeError(
                f"{len(parts)} file(s), {total} bytes: over what one batch takes ({MAX_FILES_PER_BATCH} files, "
                f"{MAX_BATCH_BYTES} bytes); publish the day in smaller partitions", dataset=dataset_id)

    def _settle_orphans(self, dataset_id: str, label: str, *, deadline_s: float, poll_initial_s: float,
                        poll_max_s: float) -> None:
        """End the batches of `label` left unfinished by a run that died (killed mid-publish).

        Publishes of one label never overlap (callers hold a lock per label: the asset's is in
        `defs/locks.py`), so an unfinished batch with this label is an orphan; left
        alone it could go live next to the new one. It is aborted; where Platform refuses (whether ABORT is
        accepted once a batch is processing is not documented), we wait for its verdict, and a batch that went
        live becomes a predecessor of the new one like any other.
        """
        for status in IN_FLIGHT_STATUSES:
            for orphan in self.find_batches(dataset_id, status=status, label=label):
                orphan_id = str(orphan["id"])
                self.counters["orphans_settled"] += 1
                try:
                    self.abort(orphan_id, dataset_id=dataset_id)
                    self.log.warning("aborted batch %s (%s), left %s by an earlier run", orphan_id, label, status)
                except ExperiencePlatformError:
                    # A batch that ends failed or is aborted at the deadline cannot go live: nothing to do.
                    with contextlib.suppress(BatchFailedError, BatchStuckError):
                        self.wait_for_batch(orphan_id, dataset_id=dataset_id, deadline_s=deadline_s,
                                            poll_initial_s=poll_initial_s, poll_max_s=poll_max_s)

    def _abort_quietly(self, batch_id: str, dataset_id: str, cause: BaseException) -> None:
        try:
            self.abort(batch_id, dataset_id=dataset_id)
            self.log.warning("aborted batch %s after: %s", batch_id, cause)
        except ExperiencePlatformError as exc:
            # A batch that was never completed cannot go live; Platform marks it abandoned eventually.
            self.log.warning("could not abort batch %s after %s: %s", batch_id, cause, exc)


def _batch_body(dataset_id: str, input_format: str, external_id: str, predecessors: Sequence[str] | None,
                tags: Mapping[str, Sequence[str]] | None, error_diagnostics: bool) -> dict[str, Any]:
    """The `POST /batches` body (batch-ingestion.yaml `IngestBatch`)."""
    body: dict[str, Any] = {"datasetId": dataset_id, "inputFormat": {"format": input_format},
                            "externalId": external_id}
    if error_diagnostics:
        body["enableErrorDiagnostics"] = True
    if predecessors:
        body["replay"] = {"predecessors": [f"${p.removeprefix('$')}" for p in predecessors], "reason": "replace"}
    if tags:
        body["tags"] = {k: list(v) for k, v in tags.items()}
    return body


class _Creation:
    """One `create_batch`: its attempts (under the retry policy) and what they learnt.

    An attempt whose answer is lost looks the batch up by `externalId` before giving the policy a chance
    to send it again: a batch that exists is adopted, never created twice.
    """

    def __init__(self, client: ExperiencePlatformClient, dataset_id: str, body: dict[str, Any], *,
                 since_ms: int) -> None:
        self.client, self.dataset_id, self.body, self.since_ms = client, dataset_id, body, since_ms
        self.external_id = str(body["externalId"])
        self.failures: list[ExperiencePlatformError] = []

    def attempt(self) -> dict[str, Any]:
        client = self.client
        try:
            return client._post_batch(self.dataset_id, self.body, self.since_ms)
        except RetryableError as exc:
            if exc.status == 401 and any(f.status == 401 for f in self.failures):
                raise AccessDeniedError("Platform rejected a freshly renewed token when creating a batch",
                                        request=exc.request, dataset=self.dataset_id, status=401,
                                        code=exc.code) from None
            self.failures.append(exc)
            client.log.warning("creating a batch in dataset %s failed: %s; looking it up by externalId %s "
                               "before deciding", self.dataset_id, exc.reason, self.external_id)
            existing = client._lookup_created(self.dataset_id, self.external_id, self.since_ms)
            if existing is None:
                raise  # it does not exist: the retry policy may create it again, same externalId
            client.counters["create_batch_recovered"] += 1
            client.log.info("batch %s with externalId %s exists: adopting it", existing["id"], self.external_id)
            return existing

    def gave_up(self, exc: GaveUp) -> Exception:
        last = self.failures[-1]
        return BatchCreateError(
            f"could not create a batch after {exc.attempts} attempt(s): {last.reason}; Catalog lists no batch "
            f"with externalId {self.external_id}, so none was left behind", request=last.request,
            dataset=self.dataset_id, status=last.status, code=last.code, title=last.title, detail=last.detail)


_ERRORS = ServiceErrors(base=ExperiencePlatformError, transient=RetryableError,
                        authentication=AuthenticationError)


def _failed(batch: Mapping[str, Any], batch_id: str, status: str, dataset_id: str | None) -> "BatchFailedError":
    """The error for a batch Catalog reports failed, with Platform's error codes and where the row errors are."""
    errors = batch.get("errors") or []
    summary = "; ".join(f"{e.get('code')}: {e.get('description')}" for e in errors
                        if isinstance(e, Mapping)) or "Platform gave no error details"
    metrics = batch.get("metrics") or {}
    return BatchFailedError(
        f"batch ended {status}: {summary} (records in {metrics.get('inputRecordCount', '?')}, "
        f"failed {metrics.get('failedRecordCount', '?')}; row errors: "
        f"GET /data/foundation/export/batches/{batch_id}/meta?path=row_errors)",
        errors=[e for e in errors if isinstance(e, Mapping)], metrics=metrics, final_status=status,
        dataset=dataset_id or _dataset_of(batch), batch_id=batch_id,
    )

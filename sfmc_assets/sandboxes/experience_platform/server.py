"""A local Adobe Experience Platform: IMS token endpoint, gateway rules, Catalog and Batch Ingestion.

One loopback HTTP server plays both hosts (``ims-na1.adobelogin.com`` and ``platform.adobe.io``); their
paths do not overlap. Wire formats follow Adobe's OpenAPI descriptions (batch-ingestion.yaml and
catalog.yaml in https://github.com/AdobeDocs/experience-platform-apis) and guides
(https://experienceleague.adobe.com/en/docs/experience-platform/ingestion/batch/api-overview); where they
leave a behaviour open, the choice made here says so in a comment.

Routes (Platform ones go through the gateway rules of the troubleshooting guide,
https://experienceleague.adobe.com/en/docs/experience-platform/landing/troubleshooting):

* ``POST /ims/token/v3``                                               -- route ``ims``
* ``POST /data/foundation/import/batches``                              -- ``create_batch``
* ``PUT  /data/foundation/import/batches/{b}/datasets/{d}/files/{path}`` -- ``upload``
* ``POST|PATCH|HEAD .../files/{path}[?action=INITIALIZE|COMPLETE]``      -- ``large_upload``
* ``POST /data/foundation/import/batches/{b}?action=COMPLETE``           -- ``complete``
* ``POST /data/foundation/import/batches/{b}?action=ABORT|FAIL|REVERT``  -- ``batch_action``
* ``GET  /data/foundation/catalog/batches[/{b}]``                       -- ``catalog_batch``
* ``GET|POST /data/foundation/catalog/dataSets``, ``GET .../dataSets/{d}`` -- ``catalog_dataset``
* ``POST|GET /data/core/privacy/jobs[/{j}]``                            -- ``privacy_jobs`` (privacy.py)
* ``/_sandbox/...`` (no auth): ``discovery``, ``stats``, ``batches[/{b}]``, ``datasets/{d}/records``,
  ``faults`` (GET/POST/DELETE), ``schemas`` (POST), ``expire-tokens`` (POST).

Batch lifecycle: ``loading`` --COMPLETE--> ``processing`` --worker after ``processing_delay_s``-->
``success`` | ``failed``; ``ABORT`` -> ``aborted``; ``REVERT`` -> ``inactive``. A successful replay batch
turns its predecessors ``inactive`` (replay is "equivalent to deleting the old batch and ingesting a new
one"). A batch is *live* when it is ``success`` and not replaced or reverted.
"""

from __future__ import annotations

import base64
import copy
import os
import re
import secrets
import threading
import time
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from . import catalog, large_files, privacy
from .faults import KIND_EXPIRE_TOKENS, KIND_FAIL_BATCH, KIND_HTTP, KIND_STUCK, Fault, FaultBook
from .processing import MAX_BATCH_BYTES, MAX_FILES_PER_BATCH, Outcome, promote
from .schemas import (
    SEED_DATASETS,
    TENANT_ID,
    SchemaError,
    Validator,
    normalise_schema,
)

DEFAULT_MAX_FILE_BYTES = 256 * 1024 * 1024  # small-file PUT limit
IMS_EXPIRES_IN = 86399  # what IMS reports for its 24 h tokens
# The doc leaves AEP scopes UNCONFIRMED and says to accept any non-empty scope; this is the commonly used one.
DEFAULT_SCOPES = "openid,session,AdobeID,read_organizations,additional_info.projectedProductContext"
STATE_FILE = "catalog.json"
SECRET_FILE = "client_secret"
BATCH_ACTIONS = ("COMPLETE", "ABORT", "FAIL", "REVERT")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

_IMPORT = "/data/foundation/import"
_CATALOG = "/data/foundation/catalog"
_RE_BATCHES = re.compile(rf"^{_IMPORT}/batches/?$")
_RE_BATCH = re.compile(rf"^{_IMPORT}/batches/([^/]+)/?$")
_RE_UPLOAD = re.compile(rf"^{_IMPORT}/batches/([^/]+)/datasets/([^/]+)/files/(.+)$")
_RE_CAT_BATCHES = re.compile(rf"^{_CATALOG}/batches/?$")
_RE_CAT_BATCH = re.compile(rf"^{_CATALOG}/batches/([^/]+)/?$")
_RE_CAT_DATASETS = re.compile(rf"^{_CATALOG}/dataSets/?$")
_RE_CAT_DATASET = re.compile(rf"^{_CATALOG}/dataSets/([^/]+)/?$")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _ulid() -> str:
    """Batch ids in Adobe's examples are ULID-like: 10 time chars + 16 random chars."""
    value = (_now_ms() << 80) | secrets.randbits(80)
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class HttpError(Exception):
    """Raised by a route to answer with a status, a JSON body and optional headers."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def gateway_error(code: str, message: str) -> HttpError:
    # HTTP status = first three digits of the gateway code (the mapping itself is UNCONFIRMED).
    return HttpError(int(code[:3]), {"error_code": code, "message": message})


def problem(status: int, title: str, detail: str) -> HttpError:
    # The gateway's documented 400 body shape.  Service-level 4xx bodies are not documented
    # (UNCONFIRMED), so every service error reuses this shape with a fitting title.
    return HttpError(
        status, {"type": "/placeholder/type/uri", "status": status, "title": title, "detail": detail}
    )


def ims_error(error: str, description: str, status: int = 400) -> HttpError:
    return HttpError(status, {"error": error, "error_description": description})


class ExperiencePlatformSandbox:
    """The embedded Experience Platform used as the project's default target and in tests.

    State (schemas, datasets, batches, tokens, uploaded files and promoted records) lives under
    ``state_dir`` and survives a restart; faults and request counters are per process.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        client_id: str = "sandbox-aep-client",
        client_secret: str | None = None,
        org_id: str = "SANDBOXORG@AdobeOrg",
        sandbox_name: str = "prod",
        processing_delay_s: float = 0.2,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        token_ttl_seconds: float = 86400.0,
        max_files_per_batch: int = MAX_FILES_PER_BATCH,
        max_batch_bytes: int = MAX_BATCH_BYTES,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port
        self.client_id = client_id
        self.client_secret = client_secret or self._persisted_secret()
        self.org_id = org_id
        self.sandbox_name = sandbox_name
        self.processing_delay_s = processing_delay_s
        self.max_file_bytes = max_file_bytes  # the small-file PUT limit (256 MB); lower it in tests
        self.max_files_per_batch = max_files_per_batch
        self.max_batch_bytes = max_batch_bytes
        self.token_ttl_seconds = token_ttl_seconds
        self.faults = FaultBook()
        self._lock = threading.RLock()
        self._stats: Counter[str] = Counter()
        self._timers: dict[str, threading.Timer] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._state = self._load_state()

    # -- lifecycle -----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("sandbox is not started")
        return f"http://{self.host}:{self._server.server_address[1]}"

    def _bind(self) -> None:
        handler = type("Handler", (_Handler,), {"sandbox": self})
        self._server = ThreadingHTTPServer((self.host, self.port), handler)
        self._server.daemon_threads = True
        with self._lock:  # batches that were processing when the last process stopped carry on
            for batch in self._state["batches"].values():
                if batch["status"] == "processing" and not batch["_sandbox"]["stuck"]:
                    self._schedule(batch["id"])

    def start(self) -> ExperiencePlatformSandbox:
        """Serve on a daemon thread and return self (also usable as a context manager)."""
        self._bind()
        assert self._server is not None
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="aep-sandbox", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve on the calling thread until interrupted (the CLI entry point)."""
        self._bind()
        assert self._server is not None
        try:
            self._server.serve_forever()
        finally:
            self.stop()

    def stop(self) -> None:
        with self._lock:
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()
        if self._server is not None:
            if self._thread is not None:
                self._server.shutdown()
                self._thread.join(timeout=5)
            self._server.server_close()
            self._server = None
            self._thread = None

    def __enter__(self) -> ExperiencePlatformSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- persistence ---------------------------------------------------------------------------------

    def _persisted_secret(self) -> str:
        path = self.state_dir / SECRET_FILE
        if path.exists():
            return path.read_text().strip()
        secret = "p8e-" + secrets.token_urlsafe(24)
        path.write_text(secret)
        return secret

    def _load_state(self) -> dict[str, Any]:
        path = self.state_dir / STATE_FILE
        if path.exists():
            state = orjson.loads(path.read_bytes())
            for dataset_id, dataset in state["datasets"].items():  # written by an older sandbox
                catalog.complete_dataset(dataset_id, dataset, state["schemas"])
            return state
        state: dict[str, Any] = {"version": 1, "schemas": {}, "datasets": {}, "batches": {}, "tokens": {}}
        self._state = state
        for seed in SEED_DATASETS:
            schema = normalise_schema(seed.schema)
            state["schemas"][schema["$id"]] = schema
            self._new_dataset(seed.id, seed.name, schema["$id"], seed.tags, "")
        self._save()
        return state

    def _save(self) -> None:
        """Write the catalog atomically so a crash never leaves a half-written file."""
        now = time.time()
        self._state["tokens"] = {t: v for t, v in self._state["tokens"].items() if v["expires_at"] > now}
        tmp = self.state_dir / f"{STATE_FILE}.tmp"
        tmp.write_bytes(orjson.dumps(self._state, option=orjson.OPT_INDENT_2))
        os.replace(tmp, self.state_dir / STATE_FILE)

    def _batch_dir(self, batch_id: str) -> Path:
        return self.state_dir / "files" / batch_id

    def _records_path(self, batch_id: str) -> Path:
        return self.state_dir / "records" / f"{batch_id}.jsonl"

    # -- Python API ----------------------------------------------------------------------------------

    def discovery(self) -> dict[str, Any]:
        """Everything a client needs to connect: hosts, credentials and the seeded dataset ids."""
        return {
            "ims_url": self.url,
            "platform_url": self.url,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "org_id": self.org_id,
            "sandbox_name": self.sandbox_name,
            "scopes": DEFAULT_SCOPES,
            "tenant_id": TENANT_ID,
            "datasets": {seed.key: seed.id for seed in SEED_DATASETS},
        }

    def set_faults(self, faults: list[Fault]) -> None:
        self.faults.set(faults)

    def clear_faults(self) -> None:
        self.faults.clear()

    def expire_tokens(self) -> None:
        """Invalidate every issued token, as if all of them had passed their expiry."""
        with self._lock:
            self._state["tokens"] = {}
            self._save()

    def process_now(self) -> None:
        """Promote every batch still processing now, instead of when its processing delay ends.

        For a test that holds a publish in processing until something else has happened.
        """
        with self._lock:
            pending = list(self._timers)
            for batch_id in pending:
                self._cancel(batch_id)
        for batch_id in pending:
            self._process(batch_id)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._stats)

    def register_schema(self, schema: dict[str, Any]) -> str:
        """Register (or replace) a schema so a dataset can be created on it; returns its ``$id``."""
        normalised = normalise_schema(schema)
        with self._lock:
            self._state["schemas"][normalised["$id"]] = normalised
            self._save()
        return normalised["$id"]

    def create_dataset(self, name: str, schema_id: str, *, tags: dict[str, list[str]] | None = None) -> str:
        """Create a dataset on a registered schema (what ``POST /dataSets`` does); returns its id."""
        with self._lock:
            if schema_id not in self._state["schemas"]:
                raise KeyError(f"schema {schema_id!r} is not registered")
            dataset_id = secrets.token_hex(12)
            self._new_dataset(dataset_id, name, schema_id, tags or {}, "")
            self._save()
        return dataset_id

    def batches(self, dataset_id: str | None = None) -> list[dict[str, Any]]:
        """Every batch (oldest first) with its status, live flag, predecessors, metrics and errors."""
        with self._lock:
            return [
                self._batch_view(b)
                for b in self._state["batches"].values()
                if dataset_id is None or b["_sandbox"]["datasetId"] == dataset_id
            ]

    def seed_batches(self, dataset_id: str, labels: list[dict[str, list[str]]], *,
                     status: str = "success") -> list[str]:
        """Add finished batches with these tags (and no records) in one write; returns their ids, oldest first.

        Stands for a dataset's history (thousands of earlier batches) at the cost of a dict each, so a test
        can put a day behind more batches than a client would ever page through.
        """
        ids: list[str] = []
        with self._lock:
            if dataset_id not in self._state["datasets"]:
                raise KeyError(dataset_id)
            base = _now_ms()
            for n, tags in enumerate(labels):
                batch_id = _ulid()
                batch = catalog.new_batch(batch_id, dataset_id=dataset_id, input_format={"format": "parquet"},
                                          external_id=None, tags=dict(tags), replay=None, org_id=self.org_id,
                                          client_id=self.client_id, now=base + n)
                catalog.finish_batch(batch, status=status, errors=[], now=base + n, metrics={
                    "inputRecordCount": 0, "outputRecordCount": 0, "failedRecordCount": 0, "inputByteSize": 0})
                batch["_sandbox"] = _private(dataset_id, [], diagnostics=False, partial=None)
                self._state["batches"][batch_id] = batch
                ids.append(batch_id)
            self._save()
        return ids

    def live_records(self, dataset_id: str) -> list[dict[str, Any]]:
        """The records of the dataset's live successful batches, as ingested (nested, normalised)."""
        return self._records(dataset_id, live=True)

    # -- state helpers (call with the lock held) -----------------------------------------------------

    def _new_dataset(
        self, dataset_id: str, name: str, schema_id: str, tags: dict[str, Any], desc: str
    ) -> None:
        schema_class = self._state["schemas"][schema_id].get("meta:class", "")
        self._state["datasets"][dataset_id] = catalog.new_dataset(
            dataset_id, name=name, schema_id=schema_id, schema_class=schema_class, tags=tags, description=desc,
            org_id=self.org_id, client_id=self.client_id, now=_now_ms(),
        )

    def _is_live(self, batch: dict[str, Any]) -> bool:
        return batch["status"] == "success" and batch["_sandbox"]["supersededBy"] is None

    def _batch_public(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in batch.items() if k != "_sandbox"}

    def _batch_view(self, batch: dict[str, Any]) -> dict[str, Any]:
        private = batch["_sandbox"]
        return {
            "id": batch["id"],
            "datasetId": private["datasetId"],
            "status": batch["status"],
            "live": self._is_live(batch),
            "predecessors": list(private["predecessors"]),
            "supersededBy": private["supersededBy"],
            "metrics": dict(batch.get("metrics", {})),
            "errors": copy.deepcopy(batch.get("errors", [])),
            "rowErrors": copy.deepcopy(private["rowErrors"]),
            "files": dict(private["files"]),
            "externalId": batch["externalId"],
            "tags": copy.deepcopy(batch["tags"]),
            "created": batch["created"],
            "completed": batch.get("completed"),
            "processingSeconds": private.get("processingSeconds"),
        }

    def _records(self, dataset_id: str, *, live: bool) -> list[dict[str, Any]]:
        with self._lock:
            if dataset_id not in self._state["datasets"]:
                raise KeyError(dataset_id)
            wanted = [
                b["id"]
                for b in sorted(self._state["batches"].values(), key=lambda b: b.get("completed") or 0)
                if b["_sandbox"]["datasetId"] == dataset_id
                and b["_sandbox"]["promoted"]
                and (self._is_live(b) if live else True)
            ]
        records: list[dict[str, Any]] = []
        for batch_id in wanted:
            path = self._records_path(batch_id)
            if path.exists():
                records.extend(orjson.loads(line) for line in path.read_bytes().splitlines() if line)
        return records

    def _token_ok(self, token: str) -> dict[str, Any] | None:
        info = self._state["tokens"].get(token)
        if info is None or info["expires_at"] <= time.time():
            return None
        return info

    # -- processing ----------------------------------------------------------------------------------

    def _schedule(self, batch_id: str) -> None:
        timer = threading.Timer(self.processing_delay_s, self._process, (batch_id,))
        timer.daemon = True
        self._timers[batch_id] = timer
        timer.start()

    def _process(self, batch_id: str) -> None:
        """Promote one completed batch (the asynchronous half of COMPLETE)."""
        with self._lock:
            self._timers.pop(batch_id, None)
            batch = self._state["batches"].get(batch_id)
            if batch is None or batch["status"] != "processing" or batch["_sandbox"]["stuck"]:
                return
            private = batch["_sandbox"]
            dataset = self._state["datasets"][private["datasetId"]]
            schema = self._state["schemas"][dataset["schemaRef"]["id"]]
            profile_enabled = "enabled:true" in dataset["tags"].get("unifiedProfile", [])
            files = [(name, self._batch_dir(batch_id) / name) for name in sorted(private["files"])]
        started = time.perf_counter()
        outcome = promote(
            files, fmt=batch["inputFormat"]["format"],
            multiline=bool(batch["inputFormat"].get("isMultiLineJson", False)),
            validator=Validator(schema, require_primary_identity=profile_enabled),
            diagnostics=private["diagnostics"], partial_percent=private["partialPercent"],
            max_files=self.max_files_per_batch, max_bytes=self.max_batch_bytes,
        )
        if private["failWith"] is not None:
            forced = private["failWith"]
            outcome = Outcome("failed", {**outcome.metrics, "outputRecordCount": 0},
                              [{"code": forced["code"], "description": forced["description"]}], [], outcome.row_errors)
        if outcome.status == "success":
            path = self._records_path(batch_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in outcome.records))
        # What Platform's processing costs here (validation + storing the records): benchmarks subtract it.
        self._finish(batch_id, batch, dataset, outcome, round(time.perf_counter() - started, 3))

    def _finish(self, batch_id: str, batch: dict[str, Any], dataset: dict[str, Any], outcome: Outcome,
                processing_s: float) -> None:
        """Record the verdict; a successful batch retires the batches it replays."""
        with self._lock:
            if batch["status"] != "processing":  # aborted or failed by the client meanwhile
                return
            private = batch["_sandbox"]
            now = _now_ms()
            catalog.finish_batch(batch, status=outcome.status, metrics=outcome.metrics, errors=outcome.errors,
                                 now=now)
            private["rowErrors"] = outcome.row_errors
            private["processingSeconds"] = processing_s
            private["promoted"] = outcome.status == "success"
            if outcome.status == "success":
                for pred_id in private["predecessors"]:
                    pred = self._state["batches"][pred_id]
                    pred["_sandbox"]["supersededBy"] = batch_id
                    catalog.replaced(pred, batch_id, now)
            catalog.dataset_batch_done(dataset, batch_id, outcome.status, now)
            self._save()

    # -- route handlers (return (status, body, headers)) ---------------------------------------------

    def handle_ims(self, req: _Request) -> tuple[int, Any]:
        ctype = req.headers.get("Content-Type", "")
        form = dict(urllib.parse.parse_qsl(req.query_string))  # parameters may be in the query
        if req.body:
            if not ctype.startswith("application/x-www-form-urlencoded"):
                raise ims_error("invalid_request", "Content-Type must be application/x-www-form-urlencoded")
            form.update(urllib.parse.parse_qsl(req.body.decode("utf-8", "replace")))
        grant = form.get("grant_type")
        # Missing-parameter and grant-type wording is UNCONFIRMED; invalid_client bodies are Adobe's documented ones.
        if not grant:
            raise ims_error("invalid_request", "missing grant_type parameter")
        if grant != "client_credentials":
            raise ims_error("unauthorized_client", f"grant_type {grant} is not allowed for this client")
        if form.get("client_id") != self.client_id:
            raise ims_error("invalid_client", "invalid client_id parameter")
        if not secrets.compare_digest(form.get("client_secret", ""), self.client_secret):
            raise ims_error("invalid_client", "invalid client_secret parameter")
        if not form.get("scope", "").strip():
            raise ims_error("invalid_scope", "invalid scope parameter")
        issued = time.time()
        claims = {
            "type": "access_token",
            "client_id": self.client_id,
            "org": self.org_id,
            "scope": form["scope"],
            "created_at": str(int(issued * 1000)),
            "expires_in": str(int(self.token_ttl_seconds * 1000)),
            "id": secrets.token_hex(8),
        }
        token = ".".join(
            (_b64(b'{"alg":"RS256","typ":"JWT"}'), _b64(orjson.dumps(claims)), _b64(secrets.token_bytes(32)))
        )
        with self._lock:
            self._state["tokens"][token] = {
                "client_id": self.client_id,
                "expires_at": issued + self.token_ttl_seconds,
            }
            self._save()
        # IMS reports one second less than the lifetime (86399 for 24 h); a short test lifetime is reported
        # honestly so a client that refreshes proactively can be exercised too.
        expires_in = max(int(self.token_ttl_seconds) - 1, 0)
        return 200, {"access_token": token, "token_type": "bearer", "expires_in": expires_in}

    def check_gateway(self, req: _Request) -> None:
        """The Adobe I/O gateway rules, in the order Adobe's troubleshooting guide lists them."""
        auth = req.headers.get("Authorization")
        if not auth:
            raise gateway_error("403010", "Oauth token is missing.")
        scheme, _, token = auth.partition(" ")
        with self._lock:
            info = self._token_ok(token.strip()) if scheme.lower() == "bearer" else None
        if info is None:
            raise gateway_error("401013", "Oauth token is not valid")
        api_key = req.headers.get("x-api-key")
        if not api_key:
            raise gateway_error("403000", "Api Key is required")
        if api_key != info["client_id"]:
            raise gateway_error("403003", "Api Key is invalid")
        org = req.headers.get("x-gw-ims-org-id")
        if not org:
            raise gateway_error("400003", "Missing header")
        if not org.endswith("@AdobeOrg"):
            raise gateway_error("403027", "User region is missing")
        if org != self.org_id:
            raise gateway_error("403025", "Profile is not valid")
        sandbox = req.headers.get("x-sandbox-name")
        # The doc gives no body for a missing/unknown sandbox (UNCONFIRMED): a missing one is treated like the
        # missing org header, an unknown one like an org the credential is not entitled to.
        if not sandbox:
            raise gateway_error("400003", "Missing header")
        if sandbox != self.sandbox_name:
            raise gateway_error("403025", "Profile is not valid")
        # "This error message displays when a POST, PUT or PATCH request has an invalid or missing
        # Content-Type header" (https://experienceleague.adobe.com/en/docs/experience-platform/landing/
        # troubleshooting#valid-content-type-not-specified): bodies or not, `?action=` calls included.
        if req.method in ("POST", "PUT", "PATCH") and not req.headers.get("Content-Type"):
            raise problem(400, "BadRequestError", "A valid content-type must be specified")

    def create_batch(self, req: _Request) -> tuple[int, Any]:
        body = req.json()
        dataset_id = body.get("datasetId")
        if not isinstance(dataset_id, str) or not dataset_id:
            raise problem(400, "BadRequestError", "datasetId is required")
        input_format = body.get("inputFormat")
        if not isinstance(input_format, dict) or not isinstance(input_format.get("format"), str):
            raise problem(400, "BadRequestError", "inputFormat.format is required")
        fmt = input_format["format"].lower()  # OAS says JSON/Parquet, docs say json/parquet
        if fmt not in ("json", "parquet"):
            raise problem(
                400, "BadRequestError", f"inputFormat.format {fmt!r} is not supported by the sandbox"
            )
        diagnostics = bool(body.get("enableErrorDiagnostics", False))
        partial = body.get(
            "partialIngestionPercent", body.get("partialIngestionPercentage")
        )  # both spellings
        if partial is not None and (not isinstance(partial, (int, float)) or not 0 <= partial <= 100):
            raise problem(400, "BadRequestError", "partialIngestionPercent must be a number from 0 to 100")
        with self._lock:
            if dataset_id not in self._state["datasets"]:
                # Status for an unknown dataset is UNCONFIRMED; the OAS lists 400 for a bad request.
                raise problem(400, "BadRequestError", f"Dataset {dataset_id} does not exist")
            predecessors = self._replay_predecessors(body.get("replay"), dataset_id)
            batch_id = _ulid()
            tags = dict(body.get("tags") or {})
            if diagnostics:
                tags["acp_enableErrorDiagnostics"] = True
            if partial is not None:
                tags["acp_partialIngestionPercent"] = partial
            batch = catalog.new_batch(
                batch_id, dataset_id=dataset_id, input_format={**input_format, "format": fmt},
                external_id=body.get("externalId"), tags=tags, replay=body.get("replay"), org_id=self.org_id,
                client_id=self.client_id, now=_now_ms(),
            )
            batch["_sandbox"] = _private(dataset_id, predecessors, diagnostics=diagnostics, partial=partial)
            self._state["batches"][batch_id] = batch
            self._save()
            return 201, self._batch_public(batch)

    def _replay_predecessors(self, replay: Any, dataset_id: str) -> list[str]:
        if replay is None:
            return []
        if not isinstance(replay, dict) or replay.get("reason") != "replace":
            raise problem(400, "BadRequestError", 'replay needs "reason": "replace" and "predecessors"')
        raw = replay.get("predecessors")
        if not isinstance(raw, list) or not raw or not all(isinstance(p, str) for p in raw):
            raise problem(400, "BadRequestError", "replay.predecessors must be a non-empty list of batch ids")
        out = []
        for pred in raw:
            # The doc writes each id as "${batchId}" and reads it as a "$" prefix; whether the
            # braces are literal is UNCONFIRMED, so "$id", "${id}" and a bare id are all accepted.
            batch_id = pred.removeprefix("$").removeprefix("{").removesuffix("}")
            found = self._state["batches"].get(batch_id)
            if found is None or found["_sandbox"]["datasetId"] != dataset_id:
                raise problem(
                    400, "BadRequestError", f"predecessor batch {pred} not found in dataset {dataset_id}"
                )
            out.append(batch_id)
        return out

    def upload(self, req: _Request, batch_id: str, dataset_id: str, file_path: str) -> tuple[int, Any]:
        _octet_stream(req)
        with self._lock:
            batch, name = self._loading_batch(batch_id, dataset_id, file_path)
            target = self._batch_dir(batch_id) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            existed = name in batch["_sandbox"]["files"]
            target.write_bytes(req.body)  # PUT replaces the file at this path (idempotent)
            batch["_sandbox"]["files"][name] = len(req.body)
            batch["updated"] = _now_ms()
            self._save()
        # batch-ingestion.yaml: 200 when the file was replaced, 201 when created; the body is empty.
        return (200 if existed else 201), None

    def large_file(self, req: _Request, batch_id: str, dataset_id: str, file_path: str) -> tuple[Any, ...]:
        """The large-file upload: INITIALIZE, PATCH parts, HEAD, COMPLETE (see `large_files.py`)."""
        action = req.query.get("action", "").upper()
        if req.method == "POST" and action not in ("INITIALIZE", "COMPLETE"):
            raise problem(400, "BadRequestError", "action must be INITIALIZE or COMPLETE")
        if req.method == "PATCH":
            _octet_stream(req)
        with self._lock:
            batch, name = self._loading_batch(batch_id, dataset_id, file_path)
            private = batch["_sandbox"]
            staging = self._batch_dir(batch_id) / f"{name}.upload"
            try:
                if action == "INITIALIZE":
                    large_files.start(private, name, staging)
                    result: tuple[Any, ...] = (201, None)
                elif req.method == "PATCH":
                    size = large_files.add_part(private, name, staging, req.headers.get("Content-Range"), req.body)
                    result = (200, {"name": name, "sizeInBytes": size})
                elif req.method == "HEAD":
                    result = (200, None, {"Range": large_files.received(private, name)})
                else:
                    large_files.finish(private, name, staging, self._batch_dir(batch_id) / name)
                    result = (201, None)
            except LookupError:
                raise problem(404, "NotFoundError", f"File {name} was not initialized in batch {batch_id}") from None
            except large_files.UploadError as exc:
                raise problem(400, "BadRequestError", str(exc)) from None
            batch["updated"] = _now_ms()
            self._save()
        return result

    def _loading_batch(self, batch_id: str, dataset_id: str, file_path: str) -> tuple[dict[str, Any], str]:
        """The batch files are being added to, and the file's normalised path (call with the lock held)."""
        parts = [p for p in urllib.parse.unquote(file_path).split("/") if p]
        if not parts or any(p in (".", "..") for p in parts):
            raise problem(400, "BadRequestError", f"invalid file path {file_path!r}")
        batch = self._state["batches"].get(batch_id)
        if batch is None:
            raise problem(404, "NotFoundError", f"Batch {batch_id} not found")
        if batch["_sandbox"]["datasetId"] != dataset_id:
            raise problem(404, "NotFoundError", f"Dataset {dataset_id} not found in batch {batch_id}")
        if batch["status"] != "loading":
            # Not documented: what a file request into a completed batch returns.
            raise problem(400, "BadRequestError", f"Batch {batch_id} is {batch['status']}, not loading")
        return batch, "/".join(parts)

    def batch_action(self, req: _Request, batch_id: str, action: str, fired: list[Fault]) -> tuple[int, Any]:
        """`?action=COMPLETE | ABORT | FAIL | REVERT`; repeating an action that already took effect is a no-op."""
        handlers = {"COMPLETE": self._complete, "ABORT": self._abort, "FAIL": self._fail, "REVERT": self._revert}
        with self._lock:
            batch = self._state["batches"].get(batch_id)
            if batch is None:
                raise problem(404, "NotFoundError", f"Batch {batch_id} not found")
            if handlers[action](batch_id, batch, fired):
                self._save()
        return 200, None

    def _complete(self, batch_id: str, batch: dict[str, Any], fired: list[Fault]) -> bool:
        status = batch["status"]
        if status in ("processing", "success", "failed", "inactive"):
            return False  # COMPLETE is safe to retry
        if status != "loading":
            # What completing an aborted batch answers is not documented: a 400 like the other refusals.
            raise problem(400, "BadRequestError", f"Batch {batch_id} is {status} and cannot be completed")
        now = _now_ms()
        catalog.touch(batch, now, status="processing", started=now)
        for fault in fired:
            if fault.kind == KIND_STUCK:
                batch["_sandbox"]["stuck"] = True
            elif fault.kind == KIND_FAIL_BATCH:
                batch["_sandbox"]["failWith"] = {"code": fault.error_code,
                                                 "description": fault.message or "Batch processing failed."}
        if not batch["_sandbox"]["stuck"]:
            self._schedule(batch_id)
        return True

    def _abort(self, batch_id: str, batch: dict[str, Any], fired: list[Fault]) -> bool:
        status = batch["status"]
        if status == "aborted":
            return False
        if status not in ("loading", "processing"):
            raise problem(400, "BadRequestError", f"Batch {batch_id} is {status}; a finalized batch cannot be aborted")
        self._cancel(batch_id)
        catalog.touch(batch, _now_ms(), status="aborted")
        return True

    def _fail(self, batch_id: str, batch: dict[str, Any], fired: list[Fault]) -> bool:
        status = batch["status"]
        if status not in ("loading", "processing", "failed"):
            raise problem(400, "BadRequestError", f"Batch {batch_id} is {status} and cannot be failed")
        self._cancel(batch_id)
        now = _now_ms()
        catalog.touch(batch, now, status="failed", completed=now)
        batch.setdefault("errors", [{"code": "FAIL", "description": "Batch marked failed by the client."}])
        return True

    def _revert(self, batch_id: str, batch: dict[str, Any], fired: list[Fault]) -> bool:
        status = batch["status"]
        if status == "inactive":
            return False
        if status != "success":
            raise problem(400, "BadRequestError",
                          f"Batch {batch_id} is {status}; only a successful batch can be reverted")
        catalog.touch(batch, _now_ms(), status="inactive")
        return True

    def _cancel(self, batch_id: str) -> None:
        timer = self._timers.pop(batch_id, None)
        if timer is not None:
            timer.cancel()

    def catalog_batch(self, batch_id: str) -> tuple[int, Any]:
        with self._lock:
            batch = self._state["batches"].get(batch_id)
            if batch is None:
                raise problem(404, "NotFoundError", f"Batch {batch_id} not found")
            return 200, {batch_id: self._batch_public(batch)}

    def catalog_batches(self, req: _Request) -> tuple[int, Any]:
        q = req.query
        limit, start = _paging(q)
        with self._lock:
            items = [
                b
                for b in self._state["batches"].values()
                if ("status" not in q or b["status"] == q["status"])
                and ("dataSet" not in q or b["_sandbox"]["datasetId"] == q["dataSet"])
                and ("externalId" not in q or b["externalId"] == q["externalId"])
                and ("batch" not in q or b["id"] == q["batch"])
                and ("createdAfter" not in q or b["created"] > _int(q["createdAfter"]))
                and ("createdBefore" not in q or b["created"] < _int(q["createdBefore"]))
                and _tags_match(b["tags"], q.get("tags"))
            ]
            items.sort(key=lambda b: b["created"], reverse=q.get("orderBy", "") == "desc:created")
            page = items[start : start + limit]
            return 200, {b["id"]: _project(self._batch_public(b), q) for b in page}

    def catalog_dataset(self, dataset_id: str) -> tuple[int, Any]:
        with self._lock:
            dataset = self._state["datasets"].get(dataset_id)
            if dataset is None:
                raise problem(404, "NotFoundError", f"Dataset {dataset_id} not found")
            return 200, {dataset_id: copy.deepcopy(dataset)}

    def catalog_datasets(self, req: _Request) -> tuple[int, Any]:
        q = req.query
        limit, start = _paging(q)
        with self._lock:
            items = [
                (i, d)
                for i, d in self._state["datasets"].items()
                if ("name" not in q or d["name"] == q["name"]) and _tags_match(d["tags"], q.get("tags"))
            ]
            page = items[start : start + limit]
            return 200, {i: _project(copy.deepcopy(d), q) for i, d in page}

    def create_catalog_dataset(self, req: _Request) -> tuple[int, Any]:
        body = req.json()
        ref = body.get("schemaRef")
        if not isinstance(ref, dict) or not isinstance(ref.get("id"), str):
            raise problem(400, "BadRequestError", "schemaRef.id is required")
        tags = body.get("tags") or {}
        if not isinstance(tags, dict) or not all(isinstance(v, list) for v in tags.values()):
            raise problem(400, "BadRequestError", "tags must map names to lists of strings")
        with self._lock:
            if ref["id"] not in self._state["schemas"]:
                raise problem(400, "BadRequestError", f"schema {ref['id']} not found in the schema registry")
            dataset_id = secrets.token_hex(12)
            self._new_dataset(
                dataset_id,
                str(body.get("name") or dataset_id),
                ref["id"],
                tags,
                str(body.get("description") or ""),
            )
            if isinstance(ref.get("contentType"), str):
                self._state["datasets"][dataset_id]["schemaRef"]["contentType"] = ref["contentType"]
            self._save()
        return 201, [f"@/dataSets/{dataset_id}"]


def _octet_stream(req: _Request) -> None:
    ctype = req.headers.get("Content-Type", "")
    if ctype.split(";")[0].strip().lower() != "application/octet-stream":
        raise problem(415, "UnsupportedMediaTypeError", "Content-Type must be application/octet-stream")


def _private(dataset_id: str, predecessors: list[str], *, diagnostics: bool,
             partial: float | None) -> dict[str, Any]:
    """What the sandbox keeps about a batch beside its Catalog object (never served)."""
    return {"datasetId": dataset_id, "files": {}, "predecessors": predecessors, "supersededBy": None,
            "stuck": False, "failWith": None, "promoted": False, "rowErrors": [], "diagnostics": diagnostics,
            "partialPercent": partial}


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise problem(400, "BadRequestError", f"{value!r} is not an integer") from None


def _paging(q: dict[str, str]) -> tuple[int, int]:
    """Catalog paging: default 20, max 100, limit=0 rejected."""
    limit = _int(q.get("limit", "20"))
    start = _int(q.get("start", "0"))
    if not 1 <= limit <= 100 or start < 0:
        raise problem(400, "BadRequestError", "limit must be between 1 and 100 and start >= 0")
    return limit, start


def _project(obj: dict[str, Any], q: dict[str, str]) -> dict[str, Any]:
    """Apply ``properties=a,b`` (top-level keys only)."""
    if not q.get("properties"):
        return obj
    keep = {p.strip() for p in q["properties"].split(",")}
    return {k: v for k, v in obj.items() if k in keep}


def _tags_match(tags: dict[str, Any], spec: str | None) -> bool:
    """``tags=NAME:VALUE`` with ``*`` wildcards, comma = AND, on datasets and batches alike
    (https://experienceleague.adobe.com/en/docs/experience-platform/catalog/api/filter-data#filter-by-tag)."""
    if not spec:
        return True
    for clause in spec.split(","):
        name, _, value = clause.partition(":")
        pattern = re.compile("^" + re.escape(value or "*").replace(r"\*", ".*") + "$")
        values = tags.get(name)
        # Platform's own tags may hold a scalar (`acp_enableErrorDiagnostics: true`); match its text.
        values = values if isinstance(values, list) else [] if values is None else [values]
        if name not in tags or not any(pattern.match(str(v)) for v in values):
            return False
    return True


class _Request:
    """The parts of an HTTP request the routes need."""

    def __init__(self, method: str, path: str, query_string: str, headers: Any, body: bytes) -> None:
        self.method = method
        self.path = path
        self.query_string = query_string
        self.query = dict(urllib.parse.parse_qsl(query_string))
        self.headers = headers
        self.body = body

    def json(self) -> dict[str, Any]:
        ctype = self.headers.get("Content-Type", "")
        if "json" not in ctype.lower():
            raise problem(400, "BadRequestError", "A valid content-type must be specified")
        try:
            data = orjson.loads(self.body or b"")
        except orjson.JSONDecodeError as exc:
            raise problem(400, "BadRequestError", f"Malformed JSON body: {exc}") from None
        if not isinstance(data, dict):
            raise problem(400, "BadRequestError", "JSON body must be an object")
        return data


class _Handler(BaseHTTPRequestHandler):
    """Routes one request; everything stateful lives on the sandbox."""

    sandbox: ExperiencePlatformSandbox
    protocol_version = "HTTP/1.1"
    server_version = "AEPSandbox/1.0"
    disable_nagle_algorithm = True  # headers and body go out as separate writes; avoid 40 ms stalls

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        sb = self.sandbox
        parsed = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        try:
            # The small-file limit is the PUT's; a large-file part may hold up to 512,000,000 bytes.
            if length > (large_files.MAX_PART_BYTES if self.command == "PATCH" else sb.max_file_bytes):
                route, _ = self._resolve(_Request(self.command, parsed.path, parsed.query, self.headers, b""))
                with sb._lock:
                    sb._stats[route] += 1
                # Too large to buffer: answer before reading and drop the connection.  The 413 status is
                # UNCONFIRMED ("> 256 MB -> 413-ish").
                self.close_connection = True
                if length <= 8 * 1024 * 1024:  # small enough to drain so the client sees the answer
                    self.rfile.read(length)
                raise problem(
                    413,
                    "PayloadTooLargeError",
                    f"File exceeds the {sb.max_file_bytes}-byte small-file limit; use the large-file upload",
                )
            req = _Request(self.command, parsed.path, parsed.query, self.headers, self.rfile.read(length))
            if parsed.path.startswith("/_sandbox/"):
                with sb._lock:
                    sb._stats["sandbox"] += 1
                result: tuple[Any, ...] = _SandboxRoutes(sb).route(req)
            else:
                result = self._platform(req)
            status, body, headers = (*result, {})[:3]
            self._send(status, body, headers)
        except HttpError as err:
            self._send(err.status, err.body, err.headers)

    def _platform(self, req: _Request) -> tuple[Any, ...]:
        sb = self.sandbox
        route, call = self._resolve(req)
        with sb._lock:
            sb._stats[route] += 1
        fired = sb.faults.take_route(route) if route != "not_found" else []
        for fault in fired:
            if fault.kind == KIND_EXPIRE_TOKENS:
                sb.expire_tokens()
        for fault in fired:
            if fault.kind == KIND_HTTP:
                raise _fault_error(fault, route)
        if route != "ims":
            sb.check_gateway(req)
        return call(fired)

    def _resolve(self, req: _Request) -> tuple[str, Any]:
        """Map method + path to (route name, handler taking the fired faults)."""
        sb, m, p = self.sandbox, req.method, req.path
        if (privacy_route := privacy.resolve(sb, req)) is not None:  # Privacy Service: privacy.py
            return privacy_route
        if p == "/ims/token/v3" and m == "POST":
            return "ims", lambda _f: sb.handle_ims(req)
        if m == "POST" and _RE_BATCHES.match(p):
            return "create_batch", lambda _f: sb.create_batch(req)
        if m == "PUT" and (g := _RE_UPLOAD.match(p)):
            return "upload", lambda _f: sb.upload(req, g[1], g[2], g[3])
        if m in ("POST", "PATCH", "HEAD") and (g := _RE_UPLOAD.match(p)):
            return "large_upload", lambda _f: sb.large_file(req, g[1], g[2], g[3])
        if m == "POST" and (g := _RE_BATCH.match(p)):
            if "json" not in req.headers.get("Content-Type", "json").lower():
                return "batch_action", lambda _f: _raise(
                    problem(400, "BadRequestError", "A valid content-type must be specified"))
            action = req.query.get("action", "").upper()
            if action not in BATCH_ACTIONS:
                return "batch_action", lambda _f: _raise(
                    problem(400, "BadRequestError", f"action must be one of {BATCH_ACTIONS}")
                )
            return ("complete" if action == "COMPLETE" else "batch_action"), lambda f: sb.batch_action(
                req, g[1], action, f
            )
        if m == "GET" and _RE_CAT_BATCHES.match(p):
            return "catalog_batch", lambda _f: sb.catalog_batches(req)
        if m == "GET" and (g := _RE_CAT_BATCH.match(p)):
            return "catalog_batch", lambda _f: sb.catalog_batch(g[1])
        if _RE_CAT_DATASETS.match(p) and m in ("GET", "POST"):
            return (
                "catalog_dataset",
                lambda _f: sb.catalog_datasets(req) if m == "GET" else sb.create_catalog_dataset(req),
            )
        if m == "GET" and (g := _RE_CAT_DATASET.match(p)):
            return "catalog_dataset", lambda _f: sb.catalog_dataset(g[1])
        return "not_found", lambda _f: _raise(problem(404, "NotFoundError", f"No route for {m} {p}"))

    def _send(self, status: int, body: Any, headers: dict[str, str]) -> None:
        payload = b"" if body is None or self.command == "HEAD" else orjson.dumps(body)
        self.send_response(status)
        if payload:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in headers.items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)


def _raise(err: HttpError) -> Any:
    raise err


def _fault_error(fault: Fault, route: str) -> HttpError:
    """An injected 5xx/429 in the shape of the service being faulted.

    Platform documents no body for 429/5xx on these APIs (not documented): IMS gets OAuth-style
    errors, the gateway gets the problem shape; 429 and 503 carry ``Retry-After`` seconds.
    """
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
    message = fault.message or ("Too many requests." if fault.status == 429 else "Injected sandbox fault.")
    if route == "ims":
        error = "too_many_requests" if fault.status == 429 else "server_error"
        return HttpError(fault.status, {"error": error, "error_description": message}, headers)
    titles = {
        429: "TooManyRequests",
        500: "InternalServerError",
        502: "BadGateway",
        503: "ServiceUnavailable",
        504: "GatewayTimeout",
    }
    err = problem(fault.status, titles.get(fault.status, "ServerError"), message)
    err.headers = headers
    return err


class _SandboxRoutes:
    """The unauthenticated ``/_sandbox`` inspection and control routes."""

    def __init__(self, sandbox: ExperiencePlatformSandbox) -> None:
        self.sb = sandbox

    def route(self, req: _Request) -> tuple[int, Any]:
        parts = [p for p in req.path.split("/") if p][1:]
        m = req.method
        if m == "GET" and parts == ["discovery"]:
            return 200, self.sb.discovery()
        if m == "GET" and parts == ["stats"]:
            return 200, self.sb.stats()
        if m == "GET" and parts == ["batches"]:
            return 200, self.sb.batches(req.query.get("dataset"))
        if m == "GET" and len(parts) == 2 and parts[0] == "batches":
            found = [b for b in self.sb.batches() if b["id"] == parts[1]]
            if not found:
                raise problem(404, "NotFoundError", f"Batch {parts[1]} not found")
            return 200, found[0]
        if m == "GET" and len(parts) == 3 and parts[0] == "datasets" and parts[2] == "records":
            live = req.query.get("live", "true").lower() != "false"
            try:
                records = self.sb._records(parts[1], live=live)
            except KeyError:
                raise problem(404, "NotFoundError", f"Dataset {parts[1]} not found") from None
            return 200, {"datasetId": parts[1], "live": live, "count": len(records), "records": records}
        if parts == ["faults"]:
            return self._faults(req)
        if m == "POST" and parts == ["schemas"]:
            try:
                return 201, {"$id": self.sb.register_schema(orjson.loads(req.body or b"null"))}
            except (SchemaError, orjson.JSONDecodeError) as exc:
                raise problem(400, "BadRequestError", str(exc)) from None
        if m == "POST" and parts == ["expire-tokens"]:
            self.sb.expire_tokens()
            return 200, {"expired": True}
        raise problem(404, "NotFoundError", f"No sandbox route for {m} {req.path}")

    def _faults(self, req: _Request) -> tuple[int, Any]:
        if req.method == "GET":
            return 200, {"faults": self.sb.faults.snapshot()}
        if req.method == "DELETE":
            self.sb.clear_faults()
            return 200, {"faults": []}
        if req.method != "POST":
            raise problem(405, "MethodNotAllowed", "use GET, POST or DELETE")
        try:
            data = orjson.loads(req.body or b"null")
            items = data.get("faults") if isinstance(data, dict) else data
            if not isinstance(items, list):
                raise ValueError('body must be {"faults": [...]} or a list of faults')
            faults = [Fault.from_json(item) for item in items]
        except (ValueError, TypeError) as exc:
            raise problem(400, "BadRequestError", str(exc)) from None
        self.sb.set_faults(faults)
        return 200, {"faults": self.sb.faults.snapshot()}

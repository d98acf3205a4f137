"""Privacy Service in the local Experience Platform: access/delete jobs that really delete.

Routes (behind the same gateway rules as the other Platform routes; Adobe ignores ``x-sandbox-name``
here because privacy jobs cover every sandbox of the org, the gateway still checks it):

* ``POST /data/core/privacy/jobs``         -- route ``privacy_jobs``: create one job per user and action
* ``GET  /data/core/privacy/jobs/{jobId}``  -- the job, its status and per-product responses
* ``GET  /data/core/privacy/jobs?regulation=...&page=&size=`` -- recent jobs (``regulation`` required)

Shapes follow Adobe's privacy jobs guide
(https://experienceleague.adobe.com/en/docs/experience-platform/privacy/api/privacy-jobs): the create
answer ``{"jobs": [{"jobId", "customer": {"user": {"key", "action"}}}], "requestStatus", "totalRecords"}``,
a job ``{jobId, requestId, userKey, action, status, createdDate, lastModifiedDate, userIds,
productResponses, regulation}``. The list answer's envelope is not documented beyond "a list of jobs":
``{"jobs": [...], "totalRecords": n}`` here (UNCONFIRMED).

A job starts ``processing`` and completes after the sandbox's processing delay. A delete job then
removes, from every dataset, the records whose ``identityMap`` holds one of the user's ids under the
same namespace (case-insensitive, as identity namespaces are): the promoted records and the uploaded
Parquet files alike, so nothing of the person stays in the sandbox's data. An access job changes nothing.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from .server import ExperiencePlatformSandbox, _Request

JOBS_FILE = "privacy_jobs.json"
_JOBS = "/data/core/privacy/jobs"
_RE_JOB = re.compile(rf"^{_JOBS}/([^/]+)/?$")
_RE_JOBS = re.compile(rf"^{_JOBS}/?$")
# Accepted values from the privacy jobs guide (`regulation`) and its appendix (`type`, products).
REGULATIONS = frozenset({"gdpr", "ccpa", "apa_aus", "cpra_usa", "hipaa_usa", "lgpd_bra", "nzpa_nzl", "pdpa_tha",
                         "vcdpa_usa"})
ID_TYPES = frozenset({"standard", "custom", "integrationCode", "namespaceId", "unregistered", "analytics", "target"})
ACTIONS = frozenset({"access", "delete"})
MAX_USERS = 1000
MAX_IDS = 9


class PrivacyService:
    """The jobs of one sandbox, persisted next to its catalog."""

    def __init__(self, sandbox: ExperiencePlatformSandbox) -> None:
        self.sb = sandbox
        self.path = Path(sandbox.state_dir) / JOBS_FILE
        self.jobs: dict[str, dict[str, Any]] = orjson.loads(self.path.read_bytes()) if self.path.exists() else {}
        for job_id, job in self.jobs.items():  # jobs that were processing when the last process stopped
            if job["status"] == "processing":
                self._schedule(job_id)

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(self.jobs, option=orjson.OPT_INDENT_2))
        os.replace(tmp, self.path)

    def _schedule(self, job_id: str) -> None:
        timer = threading.Timer(self.sb.processing_delay_s, self._process, (job_id,))
        timer.daemon = True
        timer.start()

    # -- routes --------------------------------------------------------------------------------------

    def create(self, req: _Request) -> tuple[int, Any]:
        from .server import problem

        body = req.json()
        error = _invalid(body, self.sb.org_id)
        if error:
            raise problem(400, "BadRequestError", error)
        now, created = _date(), []
        request_id = f"{int(time.time() * 1000)}{secrets.randbelow(10**4):04d}RX-{secrets.randbelow(1000):03d}"
        with self.sb._lock:
            for user in body["users"]:
                for action in user["action"]:
                    job_id = _job_id()
                    self.jobs[job_id] = {
                        "jobId": job_id, "requestId": request_id, "userKey": user["key"], "action": action,
                        "status": "processing", "submittedBy": self.sb.client_id, "createdDate": now,
                        "lastModifiedDate": now, "userIds": [dict(i) for i in user["userIDs"]],
                        "productResponses": [{"product": p, "retryCount": 0,
                                              "productStatusResponse": {"status": "processing"}}
                                             for p in body["include"]],
                        "regulation": body["regulation"], "_created": time.time(),
                    }
                    created.append({"jobId": job_id, "customer": {"user": {"key": user["key"], "action": [action]}}})
                    self._schedule(job_id)
            self._save()
        return 200, {"jobs": created, "requestStatus": 1, "totalRecords": len(created)}

    def get(self, job_id: str) -> tuple[int, Any]:
        from .server import problem

        with self.sb._lock:
            job = self.jobs.get(job_id)
            if job is None:
                raise problem(404, "NotFoundError", f"Job {job_id} not found")
            return 200, _public(job)

    def list(self, req: _Request) -> tuple[int, Any]:
        from .server import problem

        q = req.query
        if q.get("regulation") not in REGULATIONS:
            raise problem(400, "BadRequestError", "regulation is required and must be a supported regulation")
        page, size = int(q.get("page", "0")), int(q.get("size", "100"))
        if size > 1000 or size < 1 or page < 0:
            raise problem(400, "BadRequestError", "size must be between 1 and 1000 and page >= 0")
        since = time.time() - 7 * 86400  # the default window: the last seven days
        with self.sb._lock:
            jobs = [_public(j) for j in self.jobs.values()
                    if j["regulation"] == q["regulation"] and j["_created"] >= since
                    and ("status" not in q or j["status"] == q["status"])]
        return 200, {"jobs": jobs[page * size:(page + 1) * size], "totalRecords": len(jobs)}

    # -- processing ----------------------------------------------------------------------------------

    def _process(self, job_id: str) -> None:
        with self.sb._lock:
            job = self.jobs.get(job_id)
            if job is None or job["status"] != "processing":
                return
            ids = {(str(i["namespace"]).lower(), str(i["value"])) for i in job["userIds"]}
            deleted = self._delete(ids) if job["action"] == "delete" else 0
            now = _date()
            for response in job["productResponses"]:
                response.update(processedDate=now, productStatusResponse={
                    "status": "complete", "message": "Success", "responseMsgCode": "PRVCY-6000-200",
                    "responseMsgDetail": f"Finished successfully ({deleted} record(s) deleted).",
                })
            job.update(status="complete", lastModifiedDate=now)
            self._save()

    def _delete(self, ids: set[tuple[str, str]]) -> int:
        """Remove the records holding one of `ids` from every batch: promoted records and uploaded files."""
        deleted = 0
        for batch_id in list(self.sb._state["batches"]):
            path = self.sb._records_path(batch_id)
            if path.exists():
                lines = [line for line in path.read_bytes().splitlines() if line]
                kept = [line for line in lines if not _holds(orjson.loads(line).get("identityMap"), ids)]
                deleted += len(lines) - len(kept)
                if len(kept) != len(lines):
                    _replace(path, b"".join(line + b"\n" for line in kept))
            folder = self.sb._batch_dir(batch_id)
            for file in sorted(folder.rglob("*")) if folder.exists() else ():
                if file.is_file():
                    _drop_from_parquet(file, ids)
        return deleted


def _holds(identity_map: Any, ids: set[tuple[str, str]]) -> bool:
    if not isinstance(identity_map, dict):
        return False
    return any((str(ns).lower(), str(i.get("id"))) in ids
               for ns, values in identity_map.items() for i in (values or []) if isinstance(i, dict))


def _drop_from_parquet(path: Path, ids: set[tuple[str, str]]) -> None:
    """Rewrite an uploaded Parquet file without the rows whose identityMap holds one of `ids`."""
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError):
        return  # not Parquet (JSON uploads are read into records, which are rewritten above)
    if "identityMap" not in table.column_names:
        return
    maps = table.column("identityMap").to_pylist()
    keep = [not _holds({k: v for k, v in (m or [])}, ids) for m in maps]
    if all(keep):
        return
    tmp = path.with_suffix(".privacy.tmp")
    pq.write_table(table.filter(pa.array(keep)), tmp)
    os.replace(tmp, path)


def _replace(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _invalid(body: dict[str, Any], org_id: str) -> str | None:
    """What is wrong with a create request, in the guide's terms (None when it is valid)."""
    contexts = body.get("companyContexts")
    if not isinstance(contexts, list) or not any(
            isinstance(c, dict) and str(c.get("namespace")).lower() == "imsorgid" and c.get("value") == org_id
            for c in contexts):
        return "companyContexts must include the imsOrgID of this organization"
    users = body.get("users")
    if not isinstance(users, list) or not 1 <= len(users) <= MAX_USERS:
        return f"users must hold between 1 and {MAX_USERS} users"
    for user in users:
        if not isinstance(user, dict) or not isinstance(user.get("key"), str) or not user["key"]:
            return "every user needs a key"
        if not isinstance(user.get("action"), list) or not user["action"] or set(user["action"]) - ACTIONS:
            return f"user {user['key']}: action must list access and/or delete"
        ids = user.get("userIDs")
        if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_IDS:
            return f"user {user['key']}: userIDs must hold between 1 and {MAX_IDS} identities"
        if any(not isinstance(i, dict) or not i.get("namespace") or not i.get("value") or i.get("type") not in ID_TYPES
               for i in ids):
            return f"user {user['key']}: every userID needs a namespace, a value and a type in {sorted(ID_TYPES)}"
    if not isinstance(body.get("include"), list) or not body["include"]:
        return "include must list at least one product"
    if body.get("regulation") not in REGULATIONS:
        return f"regulation must be one of {sorted(REGULATIONS)}"
    return None


def _public(job: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in job.items() if not k.startswith("_")}


def _job_id() -> str:
    raw = secrets.token_hex(16)
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"


def _date() -> str:
    return time.strftime("%m/%d/%Y %I:%M %p GMT", time.gmtime())


def service(sandbox: ExperiencePlatformSandbox) -> PrivacyService:
    """The sandbox's Privacy Service (created on first use, kept on the sandbox)."""
    with sandbox._lock:
        found = getattr(sandbox, "_privacy_service", None)
        if found is None:
            found = PrivacyService(sandbox)
            sandbox._privacy_service = found  # type: ignore[attr-defined]
        return found


def resolve(sandbox: ExperiencePlatformSandbox, req: _Request) -> tuple[str, Any] | None:
    """(route name, handler) for a Privacy Service request, None for any other path (the route table hook)."""
    m, p = req.method, req.path
    if not p.startswith(_JOBS):
        return None
    if m == "POST" and _RE_JOBS.match(p):
        return "privacy_jobs", lambda _f: service(sandbox).create(req)
    if m == "GET" and _RE_JOBS.match(p):
        return "privacy_jobs", lambda _f: service(sandbox).list(req)
    if m == "GET" and (g := _RE_JOB.match(p)):
        return "privacy_jobs", lambda _f: service(sandbox).get(g[1])
    return None

"""Adobe Privacy Service: deleting a person's data from Experience Platform (data lake, Profile, identities).

What the lake erasure cannot reach: the records already ingested. A replay batch replaces data-lake data
but not Profile fragments, which "cannot be undone or deleted" by ingestion; Adobe's tool for a data
subject's erasure request is a Privacy Service job (the data hygiene record delete is documented as
"not to be used for data subject rights requests"):
https://experienceleague.adobe.com/en/docs/experience-platform/privacy/api/privacy-jobs

- `POST /data/core/privacy/jobs` with `companyContexts` (the IMS org), `users` (at most 1,000; each a
  `key` of our choosing, `action: ["delete"]` and at most 9 `userIDs` of `{namespace, value, type}`),
  `include` (the products: `aepDataLake`, `ProfileService`, `identity`) and `regulation`; the answer
  lists one job per user and action: `{"jobs": [{"jobId", "customer": {"user": {"key", "action"}}}]}`.
- `GET /data/core/privacy/jobs/{jobId}` answers the job with `status` (`submitted`, `processing`,
  `complete`, `error`) and per-product `productResponses`.
- `GET /data/core/privacy/jobs?regulation=...` lists recent jobs (7 days by default), with their
  `userKey`: how a resumed erasure finds the jobs it submitted before it was killed, instead of asking
  twice (creating a job is not idempotent, so it is never retried blindly).

Identities: a standard namespace (`Email`, `Email_LC_SHA256`, `ECID`, ...) is sent with type
`standard`, an org-defined one (`SFMCSubscriberKey`) with type `custom`
(https://experienceleague.adobe.com/en/docs/experience-platform/profile/privacy). Deletion takes Adobe
days to weeks: the erasure records the jobs and their status, and the daily privacy job refreshes it.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sfmc_assets.lib.experience_platform.client import ExperiencePlatformClient
from sfmc_assets.lib.experience_platform.errors import ExperiencePlatformError

PRIVACY_JOBS = "/data/core/privacy/jobs"
#: The data stores of Experience Platform a deletion covers: data lake, Profile, identity graph.
PRODUCTS = ("aepDataLake", "ProfileService", "identity")
#: Standard identity namespaces (Identity Service's list); any other namespace is the org's own.
STANDARD_NAMESPACES = frozenset(n.lower() for n in (
    "ECID", "Email", "Email_LC_SHA256", "Phone", "Phone_E.164", "Phone_SHA256", "TNTID", "AdCloud", "GAID",
    "IDFA", "CORE", "WAID", "AAID"))
MAX_USERS = 1000
MAX_IDS_PER_USER = 9
FINAL_STATUSES = frozenset({"complete", "error"})


@dataclass(frozen=True)
class PrivacyJob:
    """One Privacy Service job: a user key of ours, its action, Adobe's id and last known status."""

    job_id: str
    user_key: str
    action: str
    status: str = "submitted"

    def as_dict(self) -> dict[str, str]:
        return {"job_id": self.job_id, "user_key": self.user_key, "action": self.action, "status": self.status}


def user_entries(user_key: str, identities: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """One person's identities as `users` entries: at most 9 ids each, keys `<user_key>`, `<user_key>-2`, ..."""
    ids = [{"namespace": ns, "value": value,
            "type": "standard" if ns.lower() in STANDARD_NAMESPACES else "custom"}
           for ns, value in dict.fromkeys(identities)]
    chunks = [ids[i:i + MAX_IDS_PER_USER] for i in range(0, len(ids), MAX_IDS_PER_USER)]
    return [{"key": user_key if n == 0 else f"{user_key}-{n + 1}", "action": ["delete"], "userIDs": chunk}
            for n, chunk in enumerate(chunks)]


def submit_deletion(client: ExperiencePlatformClient, users: Sequence[Mapping[str, Any]], regulation: str,
                    products: Sequence[str] = PRODUCTS) -> list[PrivacyJob]:
    """Create the deletion jobs (1,000 users per request); the jobs Adobe created, one per user."""
    jobs: list[PrivacyJob] = []
    for start in range(0, len(users), MAX_USERS):
        body = {
            "companyContexts": [{"namespace": "imsOrgID", "value": client.org_id}],
            "users": list(users[start:start + MAX_USERS]),
            "include": list(products), "expandIds": False, "priority": "normal", "regulation": regulation,
        }
        answer = client._call("POST", PRIVACY_JOBS, idempotent=False, ok=(200, 201, 202), json_body=body)
        jobs += _jobs_created(answer)
    return jobs


def _jobs_created(answer: Any) -> list[PrivacyJob]:
    if not isinstance(answer, Mapping) or not isinstance(answer.get("jobs"), list):
        raise ExperiencePlatformError("Privacy Service answered without `jobs`", request=f"POST {PRIVACY_JOBS}")
    out = []
    for job in answer["jobs"]:
        user = ((job or {}).get("customer") or {}).get("user") or {}
        actions = user.get("action") or ["delete"]
        out.append(PrivacyJob(str(job["jobId"]), str(user.get("key", "")), str(actions[0])))
    return out


def job_status(client: ExperiencePlatformClient, job_id: str) -> str:
    """The job's status category: `submitted`, `processing`, `complete` or `error`."""
    body = client._call("GET", f"{PRIVACY_JOBS}/{quote(job_id, safe='')}", idempotent=True)
    if not isinstance(body, Mapping) or "status" not in body:
        raise ExperiencePlatformError(f"Privacy Service answered without a status for job {job_id}",
                                      request=f"GET {PRIVACY_JOBS}/{job_id}")
    return str(body["status"])


def find_jobs(client: ExperiencePlatformClient, regulation: str, user_keys: set[str]) -> list[PrivacyJob]:
    """Recent jobs (Adobe lists the last 7 days by default) whose user key is one of `user_keys`."""
    found: list[PrivacyJob] = []
    page = 0
    while True:
        body = client._call("GET", PRIVACY_JOBS, idempotent=True,
                            params={"regulation": regulation, "page": page, "size": 1000})
        jobs = body.get("jobs", []) if isinstance(body, Mapping) else []
        found += [PrivacyJob(str(j["jobId"]), str(j.get("userKey")), str(j.get("action", "delete")),
                             str(j.get("status", "submitted")))
                  for j in jobs if j.get("userKey") in user_keys]
        if len(jobs) < 1000:
            return found
        page += 1

"""One erasure request: its journal while it runs, its audit record once done.

The file (`_privacy/requests/<id>.json`) holds what an auditor needs and nothing personal: keyed hashes
of the contact keys and of the e-mail addresses found on their rows, when it was asked and finished,
which stores were touched, how many rows left each, the Experience Platform privacy jobs and their
status. It is rewritten after every step and every rewritten partition, which is what makes a killed
erasure resumable: a rerun with the same keys finds the same request (its id is derived from the
hashed keys), skips what is recorded as done, and redoes a partition recorded as pending (a rewrite
that may or may not have landed: its row count is taken from the journal if the rows are gone).
"""

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any

from sfmc_assets.lib.privacy.keys import KeyedHasher
from sfmc_assets.lib.privacy.store import PrivacyStore
from sfmc_assets.lib.privacy.suppression import REQUESTS_DIR

STATUS_RUNNING = "running"
STATUS_DONE = "done"
STATUS_INCOMPLETE = "incomplete"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def request_id(key_digests: list[str]) -> str:
    """Stable for a set of keys (whatever their order or repetition), so a rerun resumes the request."""
    return hashlib.sha256("\n".join(sorted(set(key_digests))).encode()).hexdigest()[:20]


@dataclass
class ErasureJournal:
    """The request document, saved through `save()` after every change."""

    store: PrivacyStore
    doc: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, store: PrivacyStore, hasher: KeyedHasher, keys: list[str], regulation: str) -> "ErasureJournal":
        digests = sorted({hasher.digest(k) for k in keys})
        rid = request_id(digests)
        doc = store.read_json(REQUESTS_DIR, f"{rid}.json")
        if doc is None:
            doc = {"request_id": rid, "requested_at": _now(), "regulation": regulation,
                   "key_fingerprint": hasher.fingerprint, "keys": digests, "needles": digests,
                   "status": STATUS_RUNNING, "attempts": 0, "steps": {}, "rows_erased": {}}
        doc["attempts"] = doc.get("attempts", 0) + 1
        doc["status"] = STATUS_RUNNING  # until this attempt verifies every store again
        journal = cls(store, doc)
        journal.save()
        return journal

    @classmethod
    def load(cls, store: PrivacyStore, rid: str) -> "ErasureJournal | None":
        doc = store.read_json(REQUESTS_DIR, f"{rid}.json")
        return cls(store, doc) if doc is not None else None

    @property
    def id(self) -> str:
        return str(self.doc["request_id"])

    @property
    def needles(self) -> set[str]:
        return set(self.doc["needles"])

    def add_needles(self, digests: set[str]) -> bool:
        """Add hashed values to match (e-mails found on the contact's rows); True when any was new."""
        new = digests - self.needles
        if new:
            self.doc["needles"] = sorted(self.needles | new)
            self.save()
        return bool(new)

    def step(self, name: str) -> dict[str, Any]:
        return self.doc["steps"].setdefault(name, {"status": "pending"})

    def finish_step(self, name: str, **facts: Any) -> None:
        self.step(name).update(status=STATUS_DONE, finished_at=_now(), **facts)
        self.save()

    def partition_state(self, where: str) -> dict[str, Any] | None:
        return self.step("lake").setdefault("partitions", {}).get(where)

    def partition_pending(self, where: str, rows: int) -> None:
        self.step("lake").setdefault("partitions", {})[where] = {"state": "pending", "rows": rows}
        self.save()

    def partition_done(self, where: str, rows: int) -> None:
        self.step("lake")["partitions"][where] = {"state": STATUS_DONE, "rows": rows}
        self.save()

    def count(self, store_name: str, rows: int) -> None:
        """Rows erased from one store (`lake:sfmc/raw/contacts`, `warehouse:segments.contact_features`)."""
        if rows:
            totals = self.doc["rows_erased"]
            totals[store_name] = totals.get(store_name, 0) + rows

    def close(self, status: str, **facts: Any) -> None:
        self.doc.update(status=status, finished_at=_now(), stores_touched=self.stores_touched(), **facts)
        self.save()

    def stores_touched(self) -> list[str]:
        """`lake`, `warehouse`, `experience_platform`: where rows were erased or a deletion was submitted."""
        aep = self.doc["steps"].get("experience_platform", {})
        return sorted({k.split(":", 1)[0] for k in self.doc["rows_erased"]}
                      | ({"experience_platform"} if aep.get("jobs") else set()))

    def save(self) -> None:
        self.doc["updated_at"] = _now()
        self.store.write_json(self.doc, REQUESTS_DIR, f"{self.id}.json")

    def summary(self) -> dict[str, Any]:
        """The audit record as shown to people: no hashes beyond the request id."""
        aep = self.doc["steps"].get("experience_platform", {})
        return {
            "request_id": self.id, "status": self.doc["status"], "requested_at": self.doc["requested_at"],
            "finished_at": self.doc.get("finished_at"), "contacts": len(self.doc["keys"]),
            "rows_erased": dict(sorted(self.doc["rows_erased"].items())),
            "stores_touched": self.stores_touched(),
            "experience_platform": {k: aep[k] for k in ("status", "jobs") if k in aep},
            "problems": self.doc.get("problems", []),
        }


def all_requests(store: PrivacyStore) -> list[ErasureJournal]:
    return [j for rid in store.names(REQUESTS_DIR) if (j := ErasureJournal.load(store, rid)) is not None]

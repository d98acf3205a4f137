"""The suppression list: contacts erased here stay erased while Marketing Cloud still holds them.

Erasing a contact from the lake does not erase it from Marketing Cloud (that is the marketing team's
call, and the next read would bring the rows straight back). Every erasure request therefore adds its
hashed keys (and the hashed e-mail addresses found on the contact's rows) to the suppression list, and
the pipeline drops matching rows where they enter: when a raw partition is written, and again when a
clean partition is built (a raw partition written by a run that started before the erasure is filtered
there). Matching is on the data extension's contact key column and its e-mail columns, by keyed hash
(lib/privacy/keys.py), so the list holds no clear value.

`suppressed.json` is the union of every request's hashes, rewritten by each erasure (the requests are
the source of truth: a lost concurrent update is restored by the next erasure, and each erasure checks
its own hashes are there before it erases anything).
"""

from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

from sfmc_assets.lib.privacy.keys import KeyedHasher, PrivacyKeyError, load_hasher
from sfmc_assets.lib.privacy.matching import Matcher, drop_expr
from sfmc_assets.lib.privacy.store import PrivacyStore

SUPPRESSED_FILE = "suppressed.json"
REQUESTS_DIR = "requests"


@dataclass(frozen=True)
class Suppression:
    """The hashed values to drop, and the hasher that made them."""

    hasher: KeyedHasher
    digests: frozenset[str]

    @classmethod
    def load(cls, store: PrivacyStore) -> "Suppression | None":
        """The installation's suppression list; None when nothing was ever erased (no cost, no key)."""
        doc = store.read_json(SUPPRESSED_FILE)
        if not doc or not doc.get("digests"):
            return None
        hasher = load_hasher(store, create=False)
        if hasher is None or hasher.fingerprint != doc.get("key_fingerprint"):
            raise PrivacyKeyError(
                "the privacy key is not the one the suppression list was made with: erased contacts would no "
                "longer be recognised. Restore SFMC_ASSETS_PRIVACY_KEY (or the privacy store's key file) "
                f"used for the existing erasure requests (fingerprint {doc.get('key_fingerprint')})")
        return cls(hasher, frozenset(doc["digests"]))

    def filter(self, frame: pl.DataFrame, columns: Iterable[str]) -> tuple[pl.DataFrame, int]:
        """`frame` without the rows whose value in any of `columns` is suppressed; (rows kept, rows dropped)."""
        present = [c for c in columns if c in frame.columns]
        hits = Matcher(self.hasher, set(self.digests)).in_frame(frame.lazy(), present)
        if not hits:
            return frame, 0
        kept = frame.filter(~drop_expr(hits))
        return kept, frame.height - kept.height

    def filter_lazy(self, frame: pl.LazyFrame, columns: Iterable[str]) -> tuple[pl.LazyFrame, int]:
        """The same for a lazy partition (the values are looked up once, the rows stay lazy)."""
        names = frame.collect_schema().names()
        hits = Matcher(self.hasher, set(self.digests)).in_frame(frame, [c for c in columns if c in names])
        if not hits:
            return frame, 0
        dropped = frame.filter(drop_expr(hits)).select(pl.len()).collect().item()
        return frame.filter(~drop_expr(hits)), dropped


def rebuild(store: PrivacyStore, hasher: KeyedHasher) -> frozenset[str]:
    """Rewrite `suppressed.json` as the union of every request's hashes; returns it."""
    digests: set[str] = set()
    for name in store.names(REQUESTS_DIR):
        doc = store.read_json(REQUESTS_DIR, f"{name}.json") or {}
        digests.update(doc.get("needles", []))
    store.write_json({"key_fingerprint": hasher.fingerprint, "digests": sorted(digests)}, SUPPRESSED_FILE)
    return frozenset(digests)

"""Keyed hashes of contact keys and e-mail addresses: what the journal, the audit and the suppression list
store instead of the values.

A plain SHA-256 of an e-mail address (or of a subscriber key, which often *is* the address) is reversed
by hashing candidate addresses; an HMAC-SHA256 under a secret key is not, as long as the key stays
secret. The key comes from `SFMC_ASSETS_PRIVACY_KEY` (set it in production, from a secret store, like
the API credentials); without it one is generated once and kept in the privacy store, which suits a
single machine and the sandboxes. Its fingerprint is stored with the suppression list: a different key
would silently stop matching erased contacts, so it is refused instead.

Values are matched ignoring surrounding spaces and case, the way Marketing Cloud compares e-mail
addresses and the way the same key may be typed by whoever files the request.
"""

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable

from sfmc_assets.lib.privacy.store import PrivacyStore

KEY_ENV = "SFMC_ASSETS_PRIVACY_KEY"
KEY_FILE = "key"
_FINGERPRINT_LABEL = b"sfmc_assets privacy key fingerprint"


class PrivacyKeyError(RuntimeError):
    """The privacy key is not the one the stored hashes were made with."""


def normalise(value: object) -> str:
    """What is hashed: the text, trimmed and lower-cased."""
    return str(value).strip().lower()


class KeyedHasher:
    """HMAC-SHA256 of normalised values, hex."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise PrivacyKeyError(f"the privacy key must be at least 16 bytes ({KEY_ENV})")
        self._secret = secret

    def __repr__(self) -> str:
        return f"KeyedHasher(fingerprint={self.fingerprint})"

    @property
    def fingerprint(self) -> str:
        """Identifies the key without revealing it."""
        return hmac.new(self._secret, _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:16]

    def digest(self, value: object) -> str:
        return hmac.new(self._secret, normalise(value).encode(), hashlib.sha256).hexdigest()

    def matching(self, values: Iterable[object], digests: set[str] | frozenset[str]) -> list[str]:
        """The distinct non-empty values whose digest is in `digests` (as they are written, not normalised)."""
        found = []
        for value in dict.fromkeys(v for v in values if v is not None):
            if normalise(value) and self.digest(value) in digests:
                found.append(str(value))
        return found


def load_hasher(store: PrivacyStore, *, create: bool) -> KeyedHasher | None:
    """The hasher of this installation: `SFMC_ASSETS_PRIVACY_KEY`, else the stored key (generated when
    `create`; None when there is none and `create` is false: nothing was ever erased)."""
    env = os.environ.get(KEY_ENV)
    if env:
        return KeyedHasher(env.encode())
    path = store.path(KEY_FILE)
    if path.exists():
        return KeyedHasher(path.read_bytes().strip())
    if not create:
        return None
    store.write_bytes(secrets.token_hex(32).encode(), KEY_FILE)
    return KeyedHasher(path.read_bytes().strip())

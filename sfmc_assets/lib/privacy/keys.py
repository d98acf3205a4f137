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
import os
import secrets
from collections.abc import Iterable

import polars as pl

from sfmc_assets.lib.privacy.store import PrivacyStore

KEY_ENV = "SFMC_ASSETS_PRIVACY_KEY"
KEY_FILE = "key"
_FINGERPRINT_LABEL = b"sfmc_assets privacy key fingerprint"


class PrivacyKeyError(RuntimeError):
    """The privacy key is not the one the stored hashes were made with."""


def normalise_all(values: pl.Series) -> pl.Series:
    """What is hashed: the text, trimmed and lower-cased (one implementation for every caller, so a key
    typed in a request and the same key read from a partition always normalise alike)."""
    return values.cast(pl.String).str.strip_chars().str.to_lowercase()


def normalise(value: object) -> str:
    return str(normalise_all(pl.Series([str(value)]))[0])


class KeyedHasher:
    """HMAC-SHA256 (RFC 2104) of normalised values, hex.

    The key's inner and outer pads are hashed once and copied per value: about four times faster than
    `hmac.new` per value, which matters when every distinct key of a partition is hashed."""

    _BLOCK = 64  # SHA-256's block size

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise PrivacyKeyError(f"the privacy key must be at least 16 bytes ({KEY_ENV})")
        key = hashlib.sha256(secret).digest() if len(secret) > self._BLOCK else secret
        key = key.ljust(self._BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
        self.fingerprint = self._mac(_FINGERPRINT_LABEL.decode())[:16]  # identifies the key, reveals nothing

    def __repr__(self) -> str:
        return f"KeyedHasher(fingerprint={self.fingerprint})"

    def _mac(self, text: str) -> str:
        inner = self._inner.copy()
        inner.update(text.encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def digest(self, value: object) -> str:
        return self._mac(normalise(value))

    def matching(self, values: Iterable[object], digests: set[str] | frozenset[str]) -> list[str]:
        """The distinct non-empty values whose digest is in `digests` (as they are written, not normalised)."""
        distinct = pl.Series([str(v) for v in values if v is not None], dtype=pl.String).unique(maintain_order=True)
        pairs = zip(distinct.to_list(), normalise_all(distinct).to_list(), strict=True)
        return [value for value, norm in pairs if norm and self._mac(norm) in digests]


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

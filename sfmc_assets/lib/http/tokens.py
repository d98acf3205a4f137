"""OAuth client-credentials tokens: cached, refreshed ahead of expiry, shared by the processes of a deployment.

Both services hand out bearer tokens for a client id and secret, and both want them reused: Salesforce asks
for one token request per 20 minutes per client and answers more with `429` / errorcode `50200`
(https://help.salesforce.com/s/articleView?id=mc_overview_limits_api.htm), and Adobe IMS tokens live 24 h.
Dagster's default executor runs every step in its own process, so a token kept in memory would be
requested again by each step. `TokenCache` therefore keeps the token in memory for its threads and, given a
`SharedTokenFile`, in one file per client under the project's state folder, where every process of the
deployment finds it: a run of any number of steps requests one token per token lifetime.

The file is a secret at rest, so it holds the token encrypted (AES-256-GCM) with a key derived (HKDF-SHA256)
from the client secret: the file alone is useless, a rotated secret simply makes it unreadable (and it is
replaced), and it is written atomically (temporary file + rename) with mode 0600. While one process
requests a token the others wait on a file lock (released by the OS if the holder dies), then read what it
wrote.
"""

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from filelock import FileLock, Timeout

from sfmc_assets.lib.retrying import LogSink

_SALT = b"sfmc_assets token cache v1"
_NONCE_BYTES = 12


@dataclass(frozen=True)
class Token:
    """A bearer token, when to renew it (wall clock, so every process agrees), and what came with it."""

    value: str = field(repr=False)
    refresh_at: float
    #: Other fields of the token response a client needs (Marketing Cloud's `rest_instance_url`).
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def issued(cls, value: str, expires_in: float, *, margin_s: float,
               extra: Mapping[str, str] | None = None) -> "Token":
        """A token just issued for `expires_in` seconds, renewed `margin_s` early but after half its life
        at the earliest, so a short-lived token is not renewed on every call."""
        lifetime = max(expires_in / 2, expires_in - margin_s)
        return cls(value, time.time() + lifetime, dict(extra or {}))

    def fresh(self) -> bool:
        return time.time() < self.refresh_at


class SharedTokenFile:
    """One client's token, encrypted in a file that the processes of a deployment share."""

    def __init__(self, directory: Path, *, identity: str, secret: str) -> None:
        """`identity` names the client (service, endpoint, client id, account...): it picks the file and is
        bound to the ciphertext, so a file cannot be passed off as another client's."""
        self.directory = Path(directory)
        digest = hashlib.sha256(identity.encode()).hexdigest()[:32]
        self.path = self.directory / f"{digest}.token"
        self._lock = FileLock(str(self.path) + ".lock")
        self._aad = identity.encode()
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=self._aad).derive(secret.encode())
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return f"SharedTokenFile({str(self.path)!r})"

    def locked(self, timeout_s: float) -> FileLock:
        """The lock held while one process requests a token (`filelock.Timeout` after `timeout_s`)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock.timeout = timeout_s
        return self._lock

    def load(self) -> Token | None:
        """The stored token, or None when there is none, it is unreadable, or was written with another key."""
        try:
            blob = self.path.read_bytes()
            plain = self._aead.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], self._aad)
            data = orjson.loads(plain)
            return Token(str(data["value"]), float(data["refresh_at"]), dict(data.get("extra") or {}))
        except (OSError, InvalidTag, ValueError, KeyError, TypeError):
            return None

    def save(self, token: Token) -> None:
        """Encrypt and write atomically, readable by this user only."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        nonce = os.urandom(_NONCE_BYTES)
        plain = orjson.dumps({"value": token.value, "refresh_at": token.refresh_at, "extra": dict(token.extra)})
        blob = nonce + self._aead.encrypt(nonce, plain, self._aad)
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(blob)
            os.replace(tmp, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


class TokenCache:
    """A valid token on demand: from memory, from the shared file, or fetched (once across processes)."""

    def __init__(self, fetch: Callable[[], Token], *, store: SharedTokenFile | None = None,
                 lock_timeout_s: float = 360.0, log: LogSink | None = None,
                 counters: Counter[str] | None = None) -> None:
        self._fetch = fetch
        self._store = store
        self._lock_timeout_s = lock_timeout_s
        self._log: LogSink = log or logging.getLogger("sfmc_assets.http")
        self._counters: Counter[str] = counters if counters is not None else Counter()
        self._lock = threading.Lock()
        self._token: Token | None = None

    @property
    def current(self) -> Token | None:
        """The token in memory (for scrubbing it out of server text), if any."""
        return self._token

    def get(self, *, stale: str | None = None) -> Token:
        """A fresh token; `stale` is one the server just refused, which is renewed even if it looks fresh."""
        with self._lock:
            if self._usable(self._token, stale):
                assert self._token is not None
                return self._token
            if self._store is None:
                self._token = self._fetch()
                return self._token
            shared = self._store.load()
            if not self._usable(shared, stale):
                shared = self._fetch_shared(stale)
            else:
                self._counters["tokens_shared"] += 1
            self._token = shared
            assert shared is not None
            return shared

    @staticmethod
    def _usable(token: Token | None, stale: str | None) -> bool:
        return token is not None and token.fresh() and token.value != stale

    def _fetch_shared(self, stale: str | None) -> Token:
        """Fetch under the file lock, unless the process that held it before us already did."""
        assert self._store is not None
        try:
            with self._store.locked(self._lock_timeout_s):
                shared = self._store.load()
                if self._usable(shared, stale):
                    self._counters["tokens_shared"] += 1
                    assert shared is not None
                    return shared
                token = self._fetch()
                self._save(token)
                return token
        except Timeout:
            # Another process has held the lock for longer than a token request may take: something is
            # stuck there; one extra token request is better than a failed run.
            self._log.warning("token cache %s stayed locked for %.0fs; requesting a token without it",
                              self._store.path, self._lock_timeout_s)
            return self._fetch()
        except OSError as exc:  # a read-only or missing folder: this process keeps its token to itself
            self._log.warning("token cache %s cannot be used (%s); tokens stay per process",
                              self._store.path, type(exc).__name__)
            self._store = None
            return self._fetch()

    def _save(self, token: Token) -> None:
        assert self._store is not None
        try:
            self._store.save(token)
        except OSError as exc:  # the token is still good for this process
            self._log.warning("could not write the token cache %s (%s); other processes will request their "
                              "own token", self._store.path, type(exc).__name__)

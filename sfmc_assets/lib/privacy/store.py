"""Where the privacy state lives: `<lake>/_privacy/`, next to the partitions every run worker already reads.

It holds the erasure requests (each one its own journal and audit record: hashed keys, times, stores,
row counts; never a clear value), the suppression list derived from them, and, when
`SFMC_ASSETS_PRIVACY_KEY` is not set, the generated key of the keyed hashes. Readers of partitions never
look here (partitions are under `sfmc/...`). Files are replaced atomically: written under a temporary
name, then renamed (a server-side copy on object stores, see lib/lake.py).
"""

import json
import uuid
from typing import Any

from upath import UPath

PRIVACY_DIR = "_privacy"


class PrivacyStore:
    """JSON documents under `<lake base>/_privacy/`."""

    def __init__(self, lake_base: UPath) -> None:
        self.base = lake_base.joinpath(PRIVACY_DIR)

    def path(self, *parts: str) -> UPath:
        return self.base.joinpath(*parts)

    def read_json(self, *parts: str) -> Any | None:
        path = self.path(*parts)
        if not path.exists():
            return None
        with path.open("rb") as f:
            return json.loads(f.read())

    def write_json(self, value: Any, *parts: str) -> None:
        self.write_bytes(json.dumps(value, indent=1, sort_keys=True).encode(), *parts)

    def write_bytes(self, data: bytes, *parts: str) -> None:
        target = self.path(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        with tmp.open("wb") as f:
            f.write(data)
        tmp.rename(target)

    def names(self, *parts: str, suffix: str = ".json") -> list[str]:
        """File names (without `suffix`) in a folder of the store, sorted."""
        folder = self.path(*parts)
        if not folder.exists():
            return []
        return sorted(p.name[: -len(suffix)] for p in folder.iterdir()
                      if p.name.endswith(suffix) and not p.name.startswith("."))

"""Fault knobs: make the sandbox misbehave the ways a real Marketing Cloud does, on demand.

A fault matches requests by route (and data extension key), skips the first `after` matches, then applies
to the next `times` matches (`None` = every one). Set from Python (`sandbox.set_faults`) or over HTTP
(`POST /_sandbox/faults` with a JSON list of the same fields), so Dagster runs in other processes see them.
"""

import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Route = Literal["token", "rowset", "fields", "search", "upsert", "*"]
Kind = Literal["status", "latency", "reset", "truncate", "malformed", "expire_token", "mutate"]


@dataclass
class Fault:
    route: str = "*"
    kind: str = "status"
    status: int | None = None  # kind=status: 429, 500, 503, ...
    retry_after: int | None = None  # seconds, sent as Retry-After (and `retryAfter` for 429 50100)
    errorcode: int | None = None  # override Marketing Cloud's errorcode (e.g. 50200 for a 429)
    latency_ms: int = 0  # kind=latency
    mutation: str | None = None  # kind=mutate: insert_before | insert_after | update | delete
    n: int = 1  # rows the mutation touches
    key: str | None = None  # only requests for this data extension key
    after: int = 0
    times: int | None = 1
    _seen: int = field(default=0, repr=False)
    _applied: int = field(default=0, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Fault":
        allowed = {k for k in cls.__dataclass_fields__ if not k.startswith("_")}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault field(s): {sorted(unknown)}")
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


class FaultBook:
    """The active faults; `take` decides, under a lock, which fault (if any) a request gets."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def set(self, faults: list[Fault]) -> None:
        with self._lock:
            self._faults = list(faults)

    def clear(self) -> None:
        self.set([])

    def active(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def take(self, route: str, key: str | None) -> list[Fault]:
        """The faults that apply to this request (latency can combine with one other fault)."""
        chosen: list[Fault] = []
        with self._lock:
            for fault in self._faults:
                if fault.route not in ("*", route):
                    continue
                if fault.key and (key or "").lower() != fault.key.lower():
                    continue
                fault._seen += 1
                if fault._seen <= fault.after:
                    continue
                if fault.times is not None and fault._applied >= fault.times:
                    continue
                if fault.kind != "latency" and any(f.kind != "latency" for f in chosen):
                    continue
                fault._applied += 1
                chosen.append(fault)
        return chosen

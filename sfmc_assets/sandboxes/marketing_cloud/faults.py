"""Fault knobs: make the sandbox misbehave the ways a real Marketing Cloud does, on demand.

A fault matches requests by route (and data extension key), skips the first `after` matches, then applies
to the next `times` matches (`None` = every one). Set from Python (`sandbox.set_faults`) or over HTTP
(`POST /_sandbox/faults` with a JSON list of the same fields), so Dagster runs in other processes see them.
"""

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ..faultbook import FaultBook as SharedFaultBook

Route = Literal["token", "rowset", "fields", "search", "upsert", "*"]
_COUNTERS = {"seen", "fired"}
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
    seen: int = field(default=0, repr=False, compare=False)  # counters kept by the FaultBook
    fired: int = field(default=0, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Fault":
        allowed = set(cls.__dataclass_fields__) - _COUNTERS
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault field(s): {sorted(unknown)}")
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in _COUNTERS}


class FaultBook(SharedFaultBook[Fault]):
    """The active faults; a request's route and data extension key pick the ones that may fire."""

    def take_request(self, route: str, key: str | None) -> list[Fault]:
        """The faults that apply to this request (latency can combine with one other fault)."""

        def matches(fault: Fault) -> bool:
            return fault.route in ("*", route) and (not fault.key or (key or "").lower() == fault.key.lower())

        def compatible(chosen: list[Fault], fault: Fault) -> bool:
            return fault.kind == "latency" or all(f.kind == "latency" for f in chosen)

        return self.take(matches, compatible)

"""Fault injection for the Experience Platform sandbox.

A fault matches requests by route; ``after`` lets the first N matching requests through and ``times``
bounds how often it fires (None = every time after that), so a test can say "the second COMPLETE gets a
503 once" or "every upload gets 429".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..faultbook import FaultBook as SharedFaultBook

# Route names, shared with the request counters in stats().
ROUTES = (
    "ims",
    "create_batch",
    "upload",
    "complete",
    "batch_action",  # ABORT / FAIL / REVERT
    "catalog_batch",
    "catalog_dataset",
)
ANY_ROUTE = "*"

KIND_HTTP = "http_error"  # answer with `status` (5xx or 429) instead of handling the request
KIND_FAIL_BATCH = "fail_batch"  # the completed batch ends `failed` with `error_code`
KIND_STUCK = "stuck_processing"  # the completed batch stays `processing` forever
KIND_EXPIRE_TOKENS = "expire_tokens"  # every issued token becomes invalid before the request is handled
KINDS = (KIND_HTTP, KIND_FAIL_BATCH, KIND_STUCK, KIND_EXPIRE_TOKENS)


@dataclass
class Fault:
    """One injected fault; see the module docstring for ``after``/``times``.

    ``fail_batch`` and ``stuck_processing`` act on the batch named by a matching COMPLETE request, so
    their route is always ``complete``.
    """

    kind: str = KIND_HTTP
    route: str = ANY_ROUTE
    status: int = 503
    retry_after: int | None = None  # seconds; defaults to 1 on 429 and 503
    after: int = 0
    times: int | None = None
    error_code: str = "INGEST-1211-400"
    message: str | None = None
    seen: int = field(default=0, compare=False)
    fired: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {KINDS}")
        if self.kind in (KIND_FAIL_BATCH, KIND_STUCK):
            self.route = "complete"
        if self.route != ANY_ROUTE and self.route not in ROUTES:
            raise ValueError(f"unknown route {self.route!r}; expected '*' or one of {ROUTES}")
        if self.kind == KIND_HTTP and not (self.status == 429 or 500 <= self.status <= 599):
            raise ValueError("http_error faults must use status 429 or 5xx")
        if self.retry_after is None and self.status in (429, 503):
            self.retry_after = 1

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        """Build from the ``POST /_sandbox/faults`` JSON shape (the dataclass fields minus counters)."""
        allowed = {"kind", "route", "status", "retry_after", "after", "times", "error_code", "message"}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault keys {sorted(unknown)}")
        return cls(**data)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class FaultBook(SharedFaultBook[Fault]):
    """The active faults; a request's route picks the ones that may fire."""

    def take_route(self, route: str) -> list[Fault]:
        return self.take(lambda fault: fault.route in (ANY_ROUTE, route))

    def snapshot(self) -> list[dict[str, Any]]:
        return [f.as_json() for f in self.active()]

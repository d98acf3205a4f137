"""The bookkeeping both sandboxes share for injected faults: which faults fire for a request.

A fault lets its first `after` matching requests through, then fires on the next `times` of them
(`None` = every one). Each sandbox defines what a fault is and which requests match it; this module only
counts, under a lock, so concurrent requests never fire a `times=1` fault twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar


class Countable(Protocol):
    """What the book needs of a fault: its schedule and the counters it keeps on the fault itself."""

    after: int
    times: int | None
    seen: int
    fired: int


F = TypeVar("F", bound=Countable)


class FaultBook(Generic[F]):
    """The active faults of one sandbox; `take` counts a request and returns the faults that fire."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[F] = []

    def set(self, faults: list[F]) -> None:
        with self._lock:
            self._faults = list(faults)

    def clear(self) -> None:
        self.set([])

    def active(self) -> list[F]:
        with self._lock:
            return list(self._faults)

    def take(self, matches: Callable[[F], bool],
             compatible: Callable[[list[F], F], bool] = lambda chosen, fault: True) -> list[F]:
        """The faults that fire for a request `matches` accepts, in the order they were set.

        `compatible(chosen, fault)` may refuse a fault given those already chosen for the same request
        (a refused fault is not counted as fired and stays due for the next request).
        """
        chosen: list[F] = []
        with self._lock:
            for fault in self._faults:
                if not matches(fault):
                    continue
                fault.seen += 1
                if fault.seen <= fault.after:
                    continue
                if fault.times is not None and fault.fired >= fault.times:
                    continue
                if not compatible(chosen, fault):
                    continue
                fault.fired += 1
                chosen.append(fault)
        return chosen

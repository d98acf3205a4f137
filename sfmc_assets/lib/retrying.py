"""Bounded retries with backoff, shared by the Marketing Cloud and Experience Platform clients.

One policy for both services (reference: Salesforce's and Adobe's guidance alike): exponential backoff
with full jitter, a server's `Retry-After` honoured (capped, so a huge value cannot stall a run), bounded
in attempts and in total time. Only exceptions marked transient are retried; what gave up is reported
to the caller, which names it in its own error type.
"""

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

T = TypeVar("T")


class LogSink(Protocol):
    """What clients log to: a `logging.Logger` or Dagster's `context.log`."""

    def info(self, msg: str, *args: Any) -> None: ...
    def warning(self, msg: str, *args: Any) -> None: ...
    def debug(self, msg: str, *args: Any) -> None: ...


@dataclass(frozen=True)
class RetrySettings:
    """Bounds of the retry policy. Defaults suit a real service; tests shrink the waits."""

    max_attempts: int = 8
    max_total_s: float = 300.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    #: A `Retry-After` longer than this is not honoured blindly (it would stall the run).
    retry_after_cap_s: float = 120.0

    def delay(self, retry_after: float | None, backoff: float) -> float:
        """The wait before the next attempt: `Retry-After` when the server gave one, else the backoff.

        A little jitter is added to `Retry-After` so parallel callers do not come back in lockstep.
        """
        if retry_after is not None:
            return min(retry_after, self.retry_after_cap_s) + min(backoff, 1.0) * 0.25
        return backoff


def retry_after_seconds(*candidates: object) -> float | None:
    """The first usable `Retry-After` value in seconds (header or body); an HTTP-date is ignored."""
    for raw in candidates:
        if raw in (None, ""):
            continue
        try:
            return max(0.0, float(raw))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
    return None


class GaveUp(Exception):
    """Every attempt failed transiently; `last` is the final failure."""

    def __init__(self, last: BaseException, attempts: int, elapsed_s: float) -> None:
        super().__init__(f"gave up after {attempts} attempt(s) in {elapsed_s:.1f}s: {last}")
        self.last, self.attempts, self.elapsed_s = last, attempts, elapsed_s


def call_with_retries(
    fn: Callable[[], T],
    *,
    settings: RetrySettings,
    transient: type[BaseException],
    counters: Counter[str],
    log: LogSink,
    service: str,
) -> T:
    """Call `fn`, retrying `transient` failures within `settings`; raise `GaveUp` when they run out."""
    started = time.monotonic()

    def _wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        backoff = wait_random_exponential(multiplier=settings.backoff_initial_s, max=settings.backoff_max_s)(state)
        return settings.delay(getattr(exc, "retry_after", None), backoff)

    def _before_sleep(state: RetryCallState) -> None:
        counters["retries"] += 1
        exc = state.outcome.exception() if state.outcome else None
        log.warning("%s call failed (attempt %d), retrying in %.1fs: %s",
                    service, state.attempt_number, state.upcoming_sleep, exc)

    retrying = Retrying(
        stop=stop_after_attempt(settings.max_attempts) | stop_after_delay(settings.max_total_s),
        wait=_wait,
        retry=retry_if_exception_type(transient),
        before_sleep=_before_sleep,
        reraise=True,
    )
    try:
        return retrying(fn)
    except transient as exc:
        raise GaveUp(exc, retrying.statistics.get("attempt_number", 1), time.monotonic() - started) from None

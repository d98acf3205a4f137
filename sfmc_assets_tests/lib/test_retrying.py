"""The shared retry policy on its own: which failures are retried, how long it waits, when it gives up."""

import logging
from collections import Counter
from collections.abc import Callable

import pytest

from sfmc_assets.lib.retrying import GaveUp, RetrySettings, call_with_retries, retry_after_seconds

FAST = RetrySettings(max_attempts=4, max_total_s=30.0, backoff_initial_s=0.001, backoff_max_s=0.002)
LOG = logging.getLogger("test_retrying")


class Transient(Exception):
    def __init__(self, retry_after: float | None = None) -> None:
        super().__init__("503 from the sandbox")
        self.retry_after = retry_after


def _flaky(failures: int, exc: Callable[[], Exception] = Transient) -> tuple[list[int], Callable[[], str]]:
    """A call that fails `failures` times with `exc()`, then returns "ok"; and the list of its calls."""
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise exc()
        return "ok"
    return calls, fn


def test_transient_failures_are_retried_until_one_succeeds() -> None:
    counters: Counter[str] = Counter()
    calls, fn = _flaky(3)
    assert call_with_retries(fn, settings=FAST, transient=Transient, counters=counters, log=LOG,
                             service="Marketing Cloud") == "ok"
    assert len(calls) == 4 and counters["retries"] == 3


def test_it_gives_up_after_max_attempts_naming_the_last_failure() -> None:
    calls, fn = _flaky(10)
    with pytest.raises(GaveUp) as info:
        call_with_retries(fn, settings=FAST, transient=Transient, counters=Counter(), log=LOG, service="x")
    assert len(calls) == FAST.max_attempts and info.value.attempts == FAST.max_attempts
    assert isinstance(info.value.last, Transient) and "gave up after 4 attempt(s)" in str(info.value)


def test_a_failure_not_marked_transient_is_raised_at_once() -> None:
    calls, fn = _flaky(1, exc=KeyError)
    with pytest.raises(KeyError):
        call_with_retries(fn, settings=FAST, transient=Transient, counters=Counter(), log=LOG, service="x")
    assert len(calls) == 1


def test_it_gives_up_when_the_total_time_runs_out() -> None:
    settings = RetrySettings(max_attempts=1000, max_total_s=0.2, backoff_initial_s=0.05, backoff_max_s=0.05)
    calls, fn = _flaky(10_000)
    with pytest.raises(GaveUp) as info:
        call_with_retries(fn, settings=settings, transient=Transient, counters=Counter(), log=LOG, service="x")
    assert 1 < len(calls) < 1000 and info.value.elapsed_s >= 0.2


def test_retry_after_is_honoured_capped_with_a_little_jitter() -> None:
    s = RetrySettings(retry_after_cap_s=120.0)
    assert s.delay(None, 3.5) == 3.5  # no Retry-After: the backoff
    assert 2.0 <= s.delay(2.0, 0.4) <= 2.0 + 0.25  # Retry-After plus at most a quarter second
    assert s.delay(86_400.0, 0.0) == 120.0  # a day-long Retry-After would stall the run: capped


def test_a_server_retry_after_drives_the_wait() -> None:
    waits: list[float] = []

    class Log:
        def info(self, msg: str, *args: object) -> None: ...
        def debug(self, msg: str, *args: object) -> None: ...
        def warning(self, msg: str, *args: object) -> None:
            waits.append(float(args[2]))

    _, fn = _flaky(1, exc=lambda: Transient(retry_after=0.3))
    assert call_with_retries(fn, settings=FAST, transient=Transient, counters=Counter(), log=Log(),
                             service="x") == "ok"
    assert len(waits) == 1 and 0.3 <= waits[0] <= 0.55


@pytest.mark.parametrize(("candidates", "expected"), [
    (("7",), 7.0), ((None, "", "2.5"), 2.5), (("-3",), 0.0),
    (("Wed, 21 Oct 2026 07:28:00 GMT",), None), ((None,), None), ((), None), (("x", 4), 4.0),
])
def test_retry_after_values(candidates: tuple, expected: float | None) -> None:
    assert retry_after_seconds(*candidates) == expected

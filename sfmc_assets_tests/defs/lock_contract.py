"""What any backend of `partition_lock` must do; run on a SQLite instance (defs/test_locks.py) and on a
PostgreSQL one (postgres/test_postgres_instance.py)."""

import threading
import time

import dagster as dg
import pytest

from sfmc_assets.defs.locks import PartitionBusyError, partition_lock

DAY = "aep/campaigns/2026-10-03"


def check_second_holder_waits_for_the_first(instance: dg.DagsterInstance) -> None:
    """Ordering, not timing: the first holder leaves only once the second has been refused at least once
    (or got in, which fails the test), however slowly either thread is scheduled."""
    order: list[str] = []
    held, refused_or_in = threading.Event(), threading.Event()

    def second() -> None:
        held.wait()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with partition_lock(instance, DAY, timeout_s=0.2):
                    order.append("second in")
                    refused_or_in.set()
                    return
            except PartitionBusyError:
                if "refused" not in order:
                    order.append("refused")
                refused_or_in.set()

    thread = threading.Thread(target=second)
    thread.start()
    with partition_lock(instance, DAY, timeout_s=5):
        order.append("first in")
        held.set()
        assert refused_or_in.wait(timeout=60)
        order.append("first out")
    thread.join(timeout=90)
    assert order == ["first in", "refused", "first out", "second in"]


def check_a_busy_day_is_a_clear_error_and_other_days_go_on(instance: dg.DagsterInstance) -> None:
    with partition_lock(instance, DAY, timeout_s=5):
        failure: list[BaseException] = []

        def contender() -> None:
            try:
                with partition_lock(instance, DAY, timeout_s=0.3):
                    pass
            except PartitionBusyError as exc:
                failure.append(exc)
            with partition_lock(instance, "aep/campaigns/2026-10-04", timeout_s=0.3):
                pass  # another day is not held up

        thread = threading.Thread(target=contender)
        thread.start()
        thread.join(timeout=30)
    assert len(failure) == 1
    assert DAY in str(failure[0]) and "rerun the partition" in str(failure[0])
    with partition_lock(instance, DAY, timeout_s=0.3):
        pass  # released on exit


def check_an_exception_releases_the_lock(instance: dg.DagsterInstance) -> None:
    with pytest.raises(ValueError), partition_lock(instance, DAY, timeout_s=5):
        raise ValueError("publish failed")
    done = threading.Event()

    def other() -> None:
        with partition_lock(instance, DAY, timeout_s=0.3):
            done.set()

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(timeout=30)
    assert done.is_set()


CHECKS = [check_second_holder_waits_for_the_first, check_a_busy_day_is_a_clear_error_and_other_days_go_on,
          check_an_exception_releases_the_lock]

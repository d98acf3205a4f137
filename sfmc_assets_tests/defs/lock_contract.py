"""What any backend of `partition_lock` must do; run on a SQLite instance (defs/test_locks.py) and on a
PostgreSQL one (postgres/test_postgres_instance.py)."""

import threading
import time

import dagster as dg
import pytest

from sfmc_assets.defs.locks import PartitionBusyError, partition_lock

DAY = "aep/campaigns/2026-10-03"


def check_second_holder_waits_for_the_first(instance: dg.DagsterInstance) -> None:
    order: list[str] = []
    held, second_waiting = threading.Event(), threading.Event()

    def second() -> None:
        held.wait()
        second_waiting.set()
        with partition_lock(instance, DAY, timeout_s=30):
            order.append("second in")

    thread = threading.Thread(target=second)
    thread.start()
    with partition_lock(instance, DAY, timeout_s=5):
        order.append("first in")
        held.set()
        second_waiting.wait()
        time.sleep(0.5)  # the second is now blocked on the lock, not yet past it
        order.append("first out")
    thread.join(timeout=30)
    assert order == ["first in", "first out", "second in"]


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

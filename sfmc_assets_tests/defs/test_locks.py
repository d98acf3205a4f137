"""`partition_lock` on a SQLite instance (the file-lock backend); the PostgreSQL backend runs the same
checks in postgres/test_postgres_instance.py. A holder killed with SIGKILL releases the lock: see
faults/test_process_kill.py (the rerun after a kill mid-publish takes the lock)."""

from collections.abc import Callable

import dagster as dg
import pytest

from sfmc_assets_tests.defs.lock_contract import CHECKS


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_file_lock(check: Callable[[dg.DagsterInstance], None], instance: dg.DagsterInstance) -> None:
    assert getattr(instance.run_storage, "postgres_url", None) is None
    check(instance)

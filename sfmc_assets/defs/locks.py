"""One writer at a time per (asset, day), across runs.

The instance's run tag limits queue a second run of the same day (`dagster/partition`) or of a range
starting the same day (`dagster/asset_partition_range_start`), but two runs whose ranges overlap from
different start days, or a one-day run inside a running backfill, are not the same tag. For the lake and
the warehouse that is harmless (a day is replaced as a whole), but two concurrent publishes of one day to
Experience Platform could each miss the other's batch and leave two live batches. So the publish of a day
holds a lock named after it, kept where the instance keeps its state, so every run of the deployment sees it:

- PostgreSQL storage (production): a session-level advisory lock on the instance's database;
- any other storage (SQLite under `$DAGSTER_HOME`, one machine): a file lock in the instance's directory.

Both are released by the operating system or the server if the holding process dies, so a killed run never
leaves a day locked.
"""

import hashlib
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import filelock
import sqlalchemy as sa

from sfmc_assets.lib.retrying import LogSink

#: Fallback poll interval while another run holds a PostgreSQL lock.
_PG_POLL_S = 0.25


class PartitionBusyError(RuntimeError):
    """Another run held the day's lock for longer than we were allowed to wait."""


@contextmanager
def partition_lock(instance: dg.DagsterInstance, name: str, *, timeout_s: float,
                   log: LogSink | None = None) -> Iterator[None]:
    """Hold the lock `name` (e.g. `aep/campaigns/2026-10-01`) for the block; wait up to `timeout_s`.

    Raises `PartitionBusyError` if another run holds it longer.
    """
    postgres_url = getattr(instance.run_storage, "postgres_url", None)
    held = (_postgres_lock(str(postgres_url), name, timeout_s, log) if postgres_url
            else _file_lock(Path(instance.root_directory), name, timeout_s, log))
    started = time.monotonic()
    with held:
        waited = time.monotonic() - started
        if log is not None and waited >= 1.0:
            log.info(f"waited {waited:.1f} s for another run to finish {name}")
        yield


def _busy(name: str, timeout_s: float) -> PartitionBusyError:
    return PartitionBusyError(
        f"another run has held {name} for more than {timeout_s:.0f} s, so nothing was sent for it; rerun the "
        f"partition once that run has finished (runs in progress are listed in the Dagster UI)"
    )


def _waiting(log: LogSink | None, name: str, timeout_s: float) -> None:
    if log is not None:
        log.info(f"another run is writing {name}; waiting up to {timeout_s:.0f} s")


@contextmanager
def _file_lock(root: Path, name: str, timeout_s: float, log: LogSink | None) -> Iterator[None]:
    path = root / "locks" / (re.sub(r"[^A-Za-z0-9._-]+", "_", name) + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        _waiting(log, name, timeout_s)
        try:
            lock.acquire(timeout=timeout_s)
        except filelock.Timeout:
            raise _busy(name, timeout_s) from None
    try:
        yield
    finally:
        lock.release()


@contextmanager
def _postgres_lock(url: str, name: str, timeout_s: float, log: LogSink | None) -> Iterator[None]:
    # A 64-bit key derived from the name: stable across processes, unlike hash().
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            deadline = time.monotonic() + timeout_s
            told = False
            while not conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                if time.monotonic() >= deadline:
                    raise _busy(name, timeout_s)
                if not told:
                    _waiting(log, name, timeout_s)
                    told = True
                time.sleep(_PG_POLL_S)
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    finally:
        engine.dispose()

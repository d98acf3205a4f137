"""The Dagster instance of tests whose runs execute in the test's own process."""

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg


@contextmanager
def memory_instance() -> Iterator[dg.DagsterInstance]:
    """An instance that keeps runs, events and check results in memory, with a temporary folder of its own.

    For in-process runs (`dg.materialize`) only: nothing outside this process can see it. It answers the
    same queries as an on-disk instance (materialised partitions, check history, run records) at about
    half the CPU of `dg.instance_for_test()`, whose SQLite storage opens, commits and closes a file for
    every event. Tests that need a daemon, a second process, or the instance's files on disk (the privacy
    scanners) use an on-disk instance.
    """
    with (tempfile.TemporaryDirectory(prefix="dagster_instance_") as folder,
          dg.DagsterInstance.ephemeral(tempdir=folder) as instance):
        yield instance

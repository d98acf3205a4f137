"""Shared fixtures: real sandboxes on loopback, clients and Dagster resources pointing at them.

Tests talk to the sandboxes over HTTP exactly as production talks to Marketing Cloud; nothing of the
project's own code is mocked.
"""

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sfmc_assets.lib.config import ProjectConfig, load_config
from sfmc_assets.lib.marketing_cloud import MarketingCloudClient, RetrySettings
from sfmc_assets.sandboxes.experience_platform import ExperiencePlatformSandbox
from sfmc_assets.sandboxes.marketing_cloud import MarketingCloudSandbox

#: The sandbox tenant's data covers these UTC days in tests (half-open).
DATA_START = dt.date(2026, 10, 1)
DATA_END = dt.date(2026, 10, 8)
FAST_RETRY = RetrySettings(max_attempts=6, max_total_s=30.0, backoff_initial_s=0.05, backoff_max_s=0.5,
                           retry_after_cap_s=2.0)


@pytest.fixture(scope="session")
def config() -> ProjectConfig:
    return load_config()


@pytest.fixture(scope="session")
def _shared_mc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MarketingCloudSandbox]:
    sandbox = MarketingCloudSandbox(tmp_path_factory.mktemp("mc_shared"), start=DATA_START, end=DATA_END)
    sandbox.start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def mc_sandbox(_shared_mc: MarketingCloudSandbox) -> Iterator[MarketingCloudSandbox]:
    """The shared, read-only sandbox (do not mutate its data: use `fresh_mc_sandbox`)."""
    _shared_mc.clear_faults()
    _shared_mc.reset_stats()
    yield _shared_mc
    _shared_mc.clear_faults()


@pytest.fixture
def fresh_mc_sandbox(tmp_path: Path) -> Iterator[MarketingCloudSandbox]:
    """A sandbox of its own, for tests that change data or schema."""
    sandbox = MarketingCloudSandbox(
        tmp_path / "mc", start=DATA_START, end=DATA_END,
        rows={"Contacts_DE": 300, "Campaign_Engagement": 2000, "Web_Activities": 2000},
    )
    sandbox.start()
    yield sandbox
    sandbox.stop()


@pytest.fixture(scope="session")
def _shared_aep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExperiencePlatformSandbox]:
    sandbox = ExperiencePlatformSandbox(tmp_path_factory.mktemp("aep_shared"), processing_delay_s=0.05)
    sandbox.start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def aep_sandbox(_shared_aep: ExperiencePlatformSandbox) -> Iterator[ExperiencePlatformSandbox]:
    """The shared Experience Platform sandbox, faults cleared around each test."""
    _shared_aep.clear_faults()
    yield _shared_aep
    _shared_aep.clear_faults()


def client_for(sandbox: MarketingCloudSandbox, **kwargs: object) -> MarketingCloudClient:
    return MarketingCloudClient(sandbox.url, sandbox.client_id, sandbox.client_secret,
                                retry=kwargs.pop("retry", FAST_RETRY), **kwargs)  # type: ignore[arg-type]


def write_discovery(sandbox: MarketingCloudSandbox | ExperiencePlatformSandbox, path: Path) -> Path:
    path.write_text(json.dumps(sandbox.discovery()), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _no_closed_instance_left_current(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails the test that leaves a closed Dagster instance's state storage current (a context such as
    `build_schedule_context` entered and never exited): every later definitions load in the process would
    fail with "Attempted to resolve undefined DagsterInstance weakref", far from the cause."""
    yield
    from dagster._core.storage.defs_state.base import DefsStateStorage

    storage = DefsStateStorage.get()
    ref = getattr(storage, "_instance_weakref", None)
    if ref is not None and ref() is None:
        pytest.fail(f"{request.node.nodeid} left a closed Dagster instance current (exit what it entered)")


#: Tests that start a worker's block of `make test`, one group a worker (node ids or module paths): the
#: long tests that drive a Dagster stack (daemon, runs, browser), so they run side by side from the start
#: instead of one after another on one worker, and modules whose module-scoped world takes a minute to
#: build, so no other worker steals some of their tests and builds it again.
WORKER_HEADS = (
    ("e2e/test_backfill.py::test_30_days_backfilled_hold_back_only_the_bad_day_and_build_no_window_from_missing_days",),
    ("e2e/test_propagation.py",),
    ("privacy/test_erasure_crash.py",),
    ("browser/test_ui.py",),
    ("e2e/test_backfill.py::test_backfill_of_three_days_runs_once_and_reports_each_day",  # one module stack
     "e2e/test_backfill.py::test_a_bad_day_fails_alone_in_a_backfill",
     "e2e/test_backfill.py::test_two_runs_of_the_same_day_do_not_overlap",
     "privacy/test_erasure_job.py"),
    ("privacy/test_erasure.py", "security/test_secrets_never_stored.py"),
)


def _in(name: str, group: tuple[str, ...]) -> bool:
    return any(name == g or name.startswith(g + "::") for g in group)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each of WORKER_HEADS first in the block of tests one worker starts with, the rest slow first.

    `make test` runs more workers than cores with `--dist worksteal`, which hands worker i the i-th of
    equal contiguous blocks; an idle worker then steals the unstarted tests at the end of another's block.
    A group at the start of each block makes every group start at once, on a worker of its own, and
    keeps it there.
    """
    name = {item: item.nodeid.removeprefix("sfmc_assets_tests/") for item in items}
    groups = [[i for i in items if _in(name[i], group)] for group in WORKER_HEADS]
    grouped = {i for group in groups for i in group}
    rest = sorted((i for i in items if i not in grouped), key=lambda i: 0 if i.get_closest_marker("slow") else 1)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    ordered: list[pytest.Item] = []
    remaining = len(items)
    for worker in range(workers):
        block = remaining // (workers - worker)  # worksteal's initial split
        head = groups.pop(0) if groups else []
        take = max(0, block - len(head))
        ordered += head + rest[:take]
        del rest[:take]
        remaining -= len(head) + take
    items[:] = ordered + [i for g in groups for i in g] + rest

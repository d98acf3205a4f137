"""Propagation with Dagster's daemon: a clean day materialised again is followed, by the automation sensor,
by its publish and segment days, each once; nothing else runs.

The stack is what `make run` starts (`dg dev`: webserver and daemon) against both sandboxes; runs are
launched the way the UI launches them.
"""

import datetime as dt
import json
import time
from collections.abc import Iterator

import dagster as dg
import pytest

from sfmc_assets.definitions import PROPAGATION_SENSOR
from sfmc_assets.sandboxes.experience_platform import ExperiencePlatformSandbox
from sfmc_assets.sandboxes.marketing_cloud import MarketingCloudSandbox
from sfmc_assets_tests.conftest import DATA_END, DATA_START
from sfmc_assets_tests.e2e.stack import DagsterStack, dagster_dev

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
UTC = dt.timezone.utc
DAYS = ["2026-10-01", "2026-10-02", "2026-10-03"]
LATE_DAY = "2026-10-02"
FEEDS = ("contacts", "campaigns", "activities")
CHAINS = [f"{layer}/{de}" for de in FEEDS for layer in ("sfmc/raw", "sfmc/clean", "aep")]
SEGMENTS = ["segments/contact_features", "segments/segment_membership"]
FOLLOWERS = ["aep/contacts", *SEGMENTS]
Stack = tuple[DagsterStack, MarketingCloudSandbox, ExperiencePlatformSandbox]
#: How often the sensor evaluates here (its default is 30 s; every evaluation is the same as with it).
SENSOR_INTERVAL_S = 5


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("propagation")
    mc = MarketingCloudSandbox(home / "mc_state", start=DATA_START, end=DATA_END,
                               rows={"Contacts_DE": 300, "Campaign_Engagement": 1500, "Web_Activities": 1500})
    aep = ExperiencePlatformSandbox(home / "aep_state", processing_delay_s=0.05)
    mc.start()
    aep.start()
    (home / "sandboxes").mkdir()
    (home / "sandboxes" / "marketing_cloud.json").write_text(json.dumps(mc.discovery()))
    (home / "sandboxes" / "experience_platform.json").write_text(json.dumps(aep.discovery()))
    try:
        with dagster_dev(home, env={"SFMC_ASSETS_PROPAGATION_INTERVAL_S": str(SENSOR_INTERVAL_S)}) as dagster:
            yield dagster, mc, aep
    finally:
        mc.stop()
        aep.stop()


def _ticks(dagster: DagsterStack) -> list[dict]:
    """The propagation sensor's ticks, newest first (the daemon evaluates it every SENSOR_INTERVAL_S)."""
    location = dagster.graphql("{ workspaceOrError { ... on Workspace { locationEntries { name } } } }")[
        "workspaceOrError"]["locationEntries"][0]["name"]
    data = dagster.graphql(
        """query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { __typename
             ... on Sensor { sensorState { status ticks(limit: 50) { status timestamp } } } } }""",
        {"s": {"repositoryLocationName": location, "repositoryName": "__repository__",
               "sensorName": PROPAGATION_SENSOR.name}})["sensorOrError"]
    assert data["__typename"] == "Sensor" and data["sensorState"]["status"] == "RUNNING", data
    return data["sensorState"]["ticks"]


def _wait_ticks(dagster: DagsterStack, n: int, after: float, timeout_s: float = 240) -> None:
    """Until the sensor has finished `n` evaluations that started after `after` (epoch seconds)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = [t for t in _ticks(dagster) if t["timestamp"] > after and t["status"] in ("SUCCESS", "SKIPPED")]
        if len(done) >= n:
            return
        time.sleep(2)
    raise TimeoutError(f"the propagation sensor did not tick {n} time(s) in {timeout_s}s: {_ticks(dagster)[:3]}")


def _runs_since(instance: dg.DagsterInstance, cursor: int) -> dict[tuple[str, str], set[str]]:
    """(asset, day) -> the runs that materialised it after the event-log `cursor`."""
    out: dict[tuple[str, str], set[str]] = {}
    for key in [*CHAINS, *SEGMENTS]:
        records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey(key.split("/")),
                                                                        after_storage_id=cursor), limit=1000)
        for r in records.records:
            out.setdefault((key, r.partition_key or ""), set()).add(r.run_id)
    return out


def test_a_clean_day_materialised_again_is_followed_once(stack: Stack) -> None:
    dagster, mc, aep = stack
    _wait_ticks(dagster, 1, after=0)  # the first evaluation is a starting point: it requests nothing
    # Every layer of three days in one backfill: nothing follows it. The backfill also targets the segment
    # days whose 30-day windows contain these days (10-04 on); their other days were never read, so they
    # fail naming them, and the backfill ends failed (docs/backfills.md). The three days are all done.
    assert dagster.wait_backfill(dagster.launch_backfill([*CHAINS, *SEGMENTS], DAYS)) == "COMPLETED_FAILED"
    with dagster.instance() as instance:
        assert set(_runs_since(instance, 0)) == {(key, day) for key in [*CHAINS, *SEGMENTS] for day in DAYS}
        cursor = instance.event_log_storage.get_maximum_record_id()
    # A late contact row for 2026-10-02, then raw and clean of that day only (a rerun after late rows).
    template = mc.ground_truth("Contacts_DE").head(1).to_dicts()[0]
    mc.upsert_rows("Contacts_DE", [template | {"SubscriberKey": "CUST-LATE-0001",
                                               "ModifiedDate": dt.datetime(2026, 10, 2, 23, 30, tzinfo=UTC)}])
    rerun = dagster.launch_backfill(["sfmc/raw/contacts", "sfmc/clean/contacts"], [LATE_DAY])
    assert dagster.wait_backfill(rerun) == "COMPLETED_SUCCESS"
    deadline = time.monotonic() + 300
    with dagster.instance() as instance:
        while time.monotonic() < deadline:
            runs = _runs_since(instance, cursor)
            if all((key, LATE_DAY) in runs for key in FOLLOWERS):
                break
            time.sleep(3)
        else:
            raise TimeoutError(f"the followers of {LATE_DAY} did not run: {sorted(runs)}")
        _wait_ticks(dagster, 2, after=time.time())  # two more evaluations: nothing else is requested
        runs = _runs_since(instance, cursor)
        followed = {k: v for k, v in runs.items() if k[0] not in ("sfmc/raw/contacts", "sfmc/clean/contacts")}
        assert set(followed) == {(key, LATE_DAY) for key in FOLLOWERS}, sorted(followed)  # no other day or asset
        assert all(len(v) == 1 for v in followed.values()), followed  # each once
        for run_id in set().union(*followed.values()):
            tags = instance.get_run_by_id(run_id).tags  # type: ignore[union-attr]
            assert tags.get("dagster/from_automation_condition") == "true"
            assert tags.get("dagster/sensor_name") == PROPAGATION_SENSOR.name
    published = aep.live_records("5ad0c0a1e0c7a5d000000001")  # the contacts dataset
    assert "CUST-LATE-0001" in {r["_sfmcsandbox"]["lifecycle"]["subscriberKey"] for r in published}

"""A backfill launched the way the UI launches it, run by Dagster's daemon against the sandbox."""

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest

from sfmc_assets.sandboxes.experience_platform import ExperiencePlatformSandbox
from sfmc_assets.sandboxes.marketing_cloud import MarketingCloudSandbox
from sfmc_assets_tests.checks import latest_check_status
from sfmc_assets_tests.conftest import DATA_END, DATA_START
from sfmc_assets_tests.e2e.stack import REPO, DagsterStack, dagster_dev

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # daemon ticks and process starts add up on 2 cores
DAYS = ["2026-10-02", "2026-10-03", "2026-10-04"]
BAD_DAY = "2026-10-03"
ASSETS = [f"sfmc/{layer}/{de}" for layer in ("raw", "clean") for de in ("contacts", "campaigns", "activities")]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DagsterStack, MarketingCloudSandbox]]:
    home = tmp_path_factory.mktemp("stack")
    sandbox = MarketingCloudSandbox(home / "mc_state", start=DATA_START, end=DATA_END,
                                    rows={"Contacts_DE": 400, "Campaign_Engagement": 3000, "Web_Activities": 3000})
    sandbox.start()
    (home / "sandboxes").mkdir()
    (home / "sandboxes" / "marketing_cloud.json").write_text(json.dumps(sandbox.discovery()))
    try:
        with dagster_dev(home) as s:
            yield s, sandbox
    finally:
        sandbox.stop()


def _materialized(instance: dg.DagsterInstance, key: str) -> set[str]:
    return set(instance.get_materialized_partitions(dg.AssetKey(key.split("/"))))


def test_backfill_of_three_days_runs_once_and_reports_each_day(stack: tuple[DagsterStack, MarketingCloudSandbox]) -> None:
    dagster, _ = stack
    backfill_id = dagster.launch_backfill(ASSETS, DAYS)
    assert dagster.wait_backfill(backfill_id) == "COMPLETED_SUCCESS"
    with dagster.instance() as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        assert len(runs) == 1  # single_run policy: one run for the whole range
        for key in ASSETS:
            assert _materialized(instance, key) >= set(DAYS), key
        statuses = latest_check_status(instance, "sfmc/clean/contacts", "pandera_contract")
        assert all(statuses[d] == "SUCCEEDED" for d in DAYS)
        event = instance.get_latest_materialization_event(dg.AssetKey(["sfmc", "raw", "contacts"]))
        assert event.asset_materialization.partition == DAYS[-1]


def test_a_bad_day_fails_alone_in_a_backfill(stack: tuple[DagsterStack, MarketingCloudSandbox], tmp_path: Path) -> None:
    dagster, sandbox = stack
    lake = Path(dagster.home) / "lake" / "sfmc" / "clean" / "contacts" / f"{BAD_DAY}.parquet"
    if not lake.exists():  # the module's first test wrote it, unless that ran on another worker
        contacts = dagster.launch_backfill(["sfmc/raw/contacts", "sfmc/clean/contacts"], [BAD_DAY])
        assert dagster.wait_backfill(contacts) == "COMPLETED_SUCCESS"
    bad_keys = sandbox.inject_bad_rows("Contacts_DE", "invalid_email", dt.date.fromisoformat(BAD_DAY), n=2)
    assert bad_keys
    days = ["2026-10-05", BAD_DAY, "2026-10-06"]  # 10-03 was fine before: now it must fail
    backfill_id = dagster.launch_backfill(["sfmc/raw/contacts", "sfmc/clean/contacts"], days)
    assert dagster.wait_backfill(backfill_id) == "COMPLETED_FAILED"
    with dagster.instance() as instance:
        statuses = latest_check_status(instance, "sfmc/clean/contacts", "pandera_contract")
        assert statuses[BAD_DAY] == "FAILED"
        assert statuses["2026-10-05"] == statuses["2026-10-06"] == "SUCCEEDED"
        backfill = instance.get_backfill(backfill_id)
        failed = backfill.asset_backfill_data.failed_and_downstream_subset
        assert {(k.to_user_string(), p) for k, p in failed.iterate_asset_partitions()} == {("sfmc/clean/contacts", BAD_DAY)}
        # the bad day's previous clean partition is not replaced: its file still holds the old, valid rows
        import polars as pl
        assert not set(bad_keys) & set(pl.read_parquet(lake)["contact_key"].to_list())


def test_two_runs_of_the_same_day_do_not_overlap(stack: tuple[DagsterStack, MarketingCloudSandbox]) -> None:
    """The instance's tag limits (`dagster/partition`, and the range start of backfill runs) queue the
    second run of a day until the first is done."""
    dagster, _ = stack
    day = ["2026-10-07"]
    first = dagster.launch_backfill(["sfmc/raw/campaigns", "sfmc/clean/campaigns"], day)
    second = dagster.launch_backfill(["sfmc/raw/campaigns", "sfmc/clean/campaigns"], day)
    assert dagster.wait_backfill(first) == "COMPLETED_SUCCESS"
    assert dagster.wait_backfill(second) == "COMPLETED_SUCCESS"
    with dagster.instance() as instance:
        records = [instance.get_run_records(filters=dg.RunsFilter(tags={"dagster/backfill": b}))[0]
                   for b in (first, second)]
    tags = [r.dagster_run.tags for r in records]
    assert all(day[0] in (t.get("dagster/partition"), t.get("dagster/asset_partition_range_start")) for t in tags), tags
    (a, b) = sorted(records, key=lambda r: r.start_time)
    assert a.end_time <= b.start_time, "two runs of the same partition ran at the same time"


# -- every layer, through the daemon: days flow on their own -------------------------------------------

ALL_ASSETS = [f"{layer}/{de}" for layer in ("sfmc/raw", "sfmc/clean", "aep") for de in ("contacts", "campaigns", "activities")] \
    + ["segments/contact_features", "segments/segment_membership"]
TODAY = dt.datetime.now(dt.timezone.utc).date()
FIRST = TODAY - dt.timedelta(days=30)  # 30 daily partitions: FIRST .. yesterday
ALL_DAYS = [(FIRST + dt.timedelta(days=i)).isoformat() for i in range(30)]


@contextmanager
def pipeline_stack(home: Path, data_from: dt.date) -> Iterator[tuple[DagsterStack, MarketingCloudSandbox, ExperiencePlatformSandbox]]:
    """What `make run` starts, with partitions from FIRST and sandbox data from `data_from` to today."""
    import yaml

    config = yaml.safe_load((REPO / "sfmc_assets" / "config" / "data_extensions.yaml").read_text())
    config["start_date"] = FIRST.isoformat()
    (home / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    mc = MarketingCloudSandbox(home / "mc_state", start=data_from, end=TODAY,
                               rows={"Contacts_DE": 300, "Campaign_Engagement": 1500, "Web_Activities": 1500}).start()
    aep = ExperiencePlatformSandbox(home / "aep_state", processing_delay_s=0.05).start()
    (home / "sandboxes").mkdir(parents=True)
    for sandbox, name in ((mc, "marketing_cloud"), (aep, "experience_platform")):
        (home / "sandboxes" / f"{name}.json").write_text(json.dumps(sandbox.discovery()))
    try:
        with dagster_dev(home, env={"SFMC_ASSETS_CONFIG": str(home / "config.yaml")}) as stack:
            yield stack, mc, aep
    finally:
        aep.stop()
        mc.stop()


def _failed(instance: dg.DagsterInstance, backfill_id: str) -> set[tuple[str, str]]:
    data = instance.get_backfill(backfill_id).asset_backfill_data
    return {(k.to_user_string(), p) for k, p in data.failed_and_downstream_subset.iterate_asset_partitions()}


def _rows(instance: dg.DagsterInstance, key: str, day: str) -> int:
    record = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(key.split("/")), asset_partitions=[day]), limit=1).records
    return int(record[0].asset_materialization.metadata["dagster/partition_row_count"].value)


def _live_days(aep: ExperiencePlatformSandbox, dataset: str) -> set[str]:
    labels = [b.get("tags", {}).get("sfmcAssetsLabel", [""])[0] for b in aep.batches(dataset) if b.get("live")]
    return {label.split("/", 1)[1] for label in labels}


def test_30_days_backfilled_hold_back_only_the_bad_day_and_build_no_window_from_missing_days(tmp_path: Path) -> None:
    """One fresh history of 30 days: the first two without any source rows, the last with bad contacts.

    1. A 7-day backfill in the middle: the segment days it touches (its 7 days and the later days whose
       windows include them) fail naming the upstream days never materialised.
    2. A backfill of every partition of every asset (the UI's "All"): 29 days published and segmented,
       the bad day failed alone, as itself; the days without data are valid, empty days.
    3. The source fixed, re-executing the failed days completes all 30.

    The bad rows are in Marketing Cloud, so re-executing means running the failed days again from the
    extract (the UI: the assets, *Materialize*, the failed days): a re-execution *from failure* re-runs
    only the failed steps on the raw day already read, which still holds the bad rows.
    """
    week, last = ALL_DAYS[10:17], ALL_DAYS[-1]
    with pipeline_stack(tmp_path, data_from=FIRST + dt.timedelta(days=2)) as (dagster, mc, aep):
        backfill = dagster.launch_backfill(ALL_ASSETS, week)
        assert dagster.wait_backfill(backfill, timeout_s=900) == "COMPLETED_FAILED"
        with dagster.instance() as instance:
            assert _materialized(instance, "aep/campaigns") == set(week)
            assert not _materialized(instance, "segments/contact_features")
            failed = _failed(instance, backfill)
            assert {p for k, p in failed if k == "segments/contact_features"} == set(ALL_DAYS[10:])
            messages = [e.dagster_event.step_failure_data.error.message for r in instance.get_runs(
                filters=dg.RunsFilter(tags={"dagster/backfill": backfill}))
                for e in instance.all_logs(r.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)]
            assert any(f"sfmc/clean/contacts {ALL_DAYS[0]}..{ALL_DAYS[9]} (never materialised)" in m
                       for m in messages), messages

        assert mc.inject_bad_rows("Contacts_DE", "invalid_email", dt.date.fromisoformat(last), n=2)
        everything = dagster.launch_backfill(ALL_ASSETS)  # the UI's "All" partitions
        assert dagster.wait_backfill(everything, timeout_s=900) == "COMPLETED_FAILED"
        held_back = {"sfmc/clean/contacts", "aep/contacts", "segments/contact_features", "segments/segment_membership"}
        with dagster.instance() as instance:
            for key in ALL_ASSETS:
                assert _materialized(instance, key) == set(ALL_DAYS) - ({last} if key in held_back else set()), key
            assert _failed(instance, everything) == {(key, last) for key in held_back}
            status = instance.get_status_by_partition(dg.AssetKey(["sfmc", "clean", "contacts"]), ALL_DAYS,
                                                      dg.DailyPartitionsDefinition(FIRST.isoformat(), timezone="UTC"))
            assert status[last] == dg.AssetPartitionStatus.FAILED  # the UI shows that day, and only it, red
            assert {d for d, s in status.items() if s == dg.AssetPartitionStatus.MATERIALIZED} == set(ALL_DAYS[:-1])
            for day in ALL_DAYS[:2]:  # no source rows at all on these days: valid, empty, checks pass
                for key in ("sfmc/clean/contacts", "aep/campaigns", "segments/contact_features",
                            "segments/segment_membership"):
                    assert _rows(instance, key, day) == 0, (key, day)
        # contacts: 27 days live (an empty day sends Platform no batch), the bad day none
        assert _live_days(aep, "5ad0c0a1e0c7a5d000000001") == set(ALL_DAYS[2:-1])

        mc.delete_rows("Contacts_DE", "\"SubscriberKey\" LIKE 'BAD-%'")  # the source is fixed
        retry = dagster.launch_backfill(ALL_ASSETS, [last])
        assert dagster.wait_backfill(retry, timeout_s=900) == "COMPLETED_SUCCESS"
        with dagster.instance() as instance:
            for key in ALL_ASSETS:
                assert _materialized(instance, key) == set(ALL_DAYS), key
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": retry}))
            assert {r.tags.get("dagster/asset_partition_range_start") or r.tags.get("dagster/partition")
                    for r in runs} == {last}  # that day only
            for key, check in (("sfmc/clean/contacts", "pandera_contract"), ("aep/campaigns", "reconciles_with_clean"),
                               ("segments/contact_features", "inputs_complete"),
                               ("segments/segment_membership", "members_exist_in_contact_features")):
                statuses = latest_check_status(instance, key, check)
                assert all(statuses[d] == "SUCCEEDED" for d in ALL_DAYS), (key, check)
        assert _live_days(aep, "5ad0c0a1e0c7a5d000000001") == set(ALL_DAYS[2:])

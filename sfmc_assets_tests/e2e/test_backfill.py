"""A backfill launched the way the UI launches it, run by Dagster's daemon against the sandbox."""

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from sfmc_assets.sandboxes.marketing_cloud import MarketingCloudSandbox
from sfmc_assets_tests.conftest import DATA_END, DATA_START
from sfmc_assets_tests.e2e.stack import DagsterStack, dagster_dev

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # daemon ticks and process starts add up on 2 cores
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


def _check_status(instance: dg.DagsterInstance, key: str, check: str) -> dict[str, str]:
    records = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey(key.split("/")), check), limit=100)
    latest: dict[str, str] = {}
    for r in records:  # newest first
        if r.event and r.event.asset_check_evaluation and r.event.asset_check_evaluation.partition:
            latest.setdefault(r.event.asset_check_evaluation.partition, r.status.value)
    return latest


def test_backfill_of_three_days_runs_once_and_reports_each_day(stack: tuple[DagsterStack, MarketingCloudSandbox]) -> None:
    dagster, _ = stack
    backfill_id = dagster.launch_backfill(ASSETS, DAYS)
    assert dagster.wait_backfill(backfill_id) == "COMPLETED_SUCCESS"
    with dagster.instance() as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        assert len(runs) == 1  # single_run policy: one run for the whole range
        for key in ASSETS:
            assert _materialized(instance, key) >= set(DAYS), key
        statuses = _check_status(instance, "sfmc/clean/contacts", "pandera_contract")
        assert all(statuses[d] == "SUCCEEDED" for d in DAYS)
        event = instance.get_latest_materialization_event(dg.AssetKey(["sfmc", "raw", "contacts"]))
        assert event.asset_materialization.partition == DAYS[-1]


def test_a_bad_day_fails_alone_in_a_backfill(stack: tuple[DagsterStack, MarketingCloudSandbox], tmp_path: Path) -> None:
    dagster, sandbox = stack
    bad_keys = sandbox.inject_bad_rows("Contacts_DE", "invalid_email", dt.date.fromisoformat(BAD_DAY), n=2)
    assert bad_keys
    days = ["2026-10-05", BAD_DAY, "2026-10-06"]  # 10-03 was fine before: now it must fail
    backfill_id = dagster.launch_backfill(["sfmc/raw/contacts", "sfmc/clean/contacts"], days)
    assert dagster.wait_backfill(backfill_id) == "COMPLETED_FAILED"
    with dagster.instance() as instance:
        statuses = _check_status(instance, "sfmc/clean/contacts", "pandera_contract")
        assert statuses[BAD_DAY] == "FAILED"
        assert statuses["2026-10-05"] == statuses["2026-10-06"] == "SUCCEEDED"
        backfill = instance.get_backfill(backfill_id)
        failed = backfill.asset_backfill_data.failed_and_downstream_subset
        assert {(k.to_user_string(), p) for k, p in failed.iterate_asset_partitions()} == {("sfmc/clean/contacts", BAD_DAY)}
        # the bad day's previous clean partition is not replaced: its file still holds the old, valid rows
        lake = Path(dagster.home) / "lake" / "sfmc" / "clean" / "contacts" / f"{BAD_DAY}.parquet"
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

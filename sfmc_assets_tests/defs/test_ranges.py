"""`defs/ranges.py` on its own: a ranged run reports each day, a failed day fails alone, and the days a
downstream step must not read are named.

A two-asset toy graph (a day-by-day asset with a per-day check, and one downstream) run by Dagster in
process on a real instance: the behaviour the raw and clean layers build on, without Marketing Cloud.
"""

import dagster as dg
import pytest

from sfmc_assets.defs.partitions import partitioned_check
from sfmc_assets.defs.ranges import DayResult, describe_days, report, unusable_days
from sfmc_assets_tests.checks import latest_check_status
from sfmc_assets_tests.instances import memory_instance

PARTS = dg.DailyPartitionsDefinition("2026-10-01", end_date="2026-10-06")
KEY = dg.AssetKey(["toy", "days"])
CHECK = "rows_positive"
ALL = PARTS.get_partition_keys()


def _asset(bad: set[str]) -> dg.AssetsDefinition:
    @dg.asset(key=KEY, partitions_def=PARTS, backfill_policy=dg.BackfillPolicy.single_run(),
              check_specs=[partitioned_check(CHECK, KEY, PARTS, description="rows > 0")])
    def days(context: dg.AssetExecutionContext):
        results = [DayResult(day, metadata={"rows": len(day)},
                             checks=[dg.AssetCheckResult(check_name=CHECK, passed=day not in bad)],
                             failure=f"{day} holds bad rows" if day in bad else None)
                   for day in context.partition_keys]
        yield from report(context, KEY, results)
    return days


def _run(instance: dg.DagsterInstance, bad: set[str], first: str, last: str) -> dg.ExecuteInProcessResult:
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    return dg.materialize([_asset(bad)], instance=instance, tags=tags, raise_on_error=False)


@pytest.fixture
def instance() -> dg.DagsterInstance:
    with memory_instance() as inst:
        yield inst


def test_a_good_range_materialises_each_day_with_its_own_metadata_and_check(instance: dg.DagsterInstance) -> None:
    assert _run(instance, set(), ALL[0], ALL[2]).success
    assert set(instance.get_materialized_partitions(KEY)) == set(ALL[:3])
    for day in ALL[:3]:
        record = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=KEY, asset_partitions=[day]), limit=1).records[0]
        assert record.asset_materialization.metadata["rows"].value == len(day)
    assert latest_check_status(instance, KEY, CHECK) == dict.fromkeys(ALL[:3], "SUCCEEDED")


def test_a_bad_day_fails_alone_and_is_named(instance: dg.DagsterInstance) -> None:
    result = _run(instance, {ALL[1]}, ALL[0], ALL[2])
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data
    assert f"1 of 3 asset day(s) failed. toy/days {ALL[1]}: {ALL[1]} holds bad rows" in failure.error.message
    assert set(instance.get_materialized_partitions(KEY)) == {ALL[0], ALL[2]}
    assert latest_check_status(instance, KEY, CHECK) == {ALL[0]: "SUCCEEDED", ALL[1]: "FAILED", ALL[2]: "SUCCEEDED"}
    assert unusable_days(instance, KEY, PARTS, ALL) == {
        ALL[1]: "its latest materialisation failed",
        ALL[3]: "never materialised", ALL[4]: "never materialised"}


def test_a_rerun_of_the_bad_day_completes_the_range(instance: dg.DagsterInstance) -> None:
    _run(instance, {ALL[1]}, ALL[0], ALL[2])
    assert _run(instance, set(), ALL[1], ALL[1]).success
    assert set(instance.get_materialized_partitions(KEY)) == set(ALL[:3])
    assert unusable_days(instance, KEY, PARTS, ALL[:3]) == {}
    assert unusable_days(instance, KEY, PARTS, ["2020-01-01"]) == {}  # not a partition: nothing to say


def test_day_lists_read_as_ranges() -> None:
    assert describe_days(["2026-10-03", "2026-10-01", "2026-10-02", "2026-10-07"]) == "2026-10-01..2026-10-03, 2026-10-07"
    assert describe_days(["2026-02-28", "2026-03-01"]) == "2026-02-28..2026-03-01"
    assert describe_days([]) == ""

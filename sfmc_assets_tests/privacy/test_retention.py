"""Retention deletes exactly the partitions past their data extension's setting, and the UI says so.

Five days of contacts (raw retention: 2 days, with quarantined rows on two days) and orders (clean
retention: 3 days) run for real; the `privacy_retention` job then runs as of 2026-10-06, the way its
schedule launches it.
"""

import datetime as dt
from collections.abc import Iterator

import dagster as dg
import pytest

from sfmc_assets.defs.privacy.jobs import RETENTION_JOB
from sfmc_assets.lib.config import ProjectConfig
from sfmc_assets_tests.defs.conftest import definitions_for, resources_for
from sfmc_assets_tests.privacy.world import DAYS, World, make_world, variant

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
ROWS = {"Contacts_DE": 120, "Campaign_Engagement": 50, "Web_Activities": 50, "Orders": 300}
AS_OF = "2026-10-06"
SELECTION = dg.AssetSelection.assets(*[["sfmc", layer, de] for layer in ("raw", "clean") for de in ("contacts", "orders")])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, config: ProjectConfig) -> Iterator[World]:
    changed = variant(config, {"contacts": {"privacy": {"retention_days": 2}, "quarantine_tolerance": 0.5},
                               "orders": {"privacy": {"clean_retention_days": 3}}})
    world = make_world(tmp_path_factory.mktemp("retention"), changed, ROWS)
    for day in ("2026-10-02", "2026-10-05"):  # quarantined rows on those days
        world.mc.inject_bad_rows("Contacts_DE", "invalid_email", dt.date.fromisoformat(day), n=1)
    run = world.materialize(DAYS[0], DAYS[4], SELECTION)
    assert run.success, [e.message for e in run.all_events if e.is_failure]
    yield world
    world.mc.stop()
    world.aep.stop()


def _layout(world: World) -> dict[str, list[str]]:
    return {"/".join(k): world.lake.partitions(k) for k in (
        ["sfmc", "raw", "contacts"], ["sfmc", "quarantine", "contacts"], ["sfmc", "clean", "contacts"],
        ["sfmc", "raw", "orders"], ["sfmc", "clean", "orders"])}


def _run_retention(world: World, **config: object) -> dg.ExecuteInProcessResult:
    job = definitions_for(world.config).resolve_job_def(RETENTION_JOB)
    with world.instance() as instance:
        return job.execute_in_process(
            run_config={"ops": {"apply_retention": {"config": {"as_of": AS_OF, **config}}}}, instance=instance,
            resources=resources_for(world.mc, world.home, world.aep))


def test_retention_deletes_exactly_the_expired_partitions(world: World) -> None:
    before = _layout(world)
    assert before["sfmc/raw/contacts"] == DAYS[:5] and before["sfmc/quarantine/contacts"] == ["2026-10-02", "2026-10-05"]

    dry = _run_retention(world, dry_run=True)
    assert dry.success and _layout(world) == before  # a dry run lists, deletes nothing

    result = _run_retention(world)
    assert result.success
    after = _layout(world)
    # contacts: raw and quarantine kept 2 days before 10-06 (10-04 onwards); clean untouched
    assert after["sfmc/raw/contacts"] == ["2026-10-04", "2026-10-05"]
    assert after["sfmc/quarantine/contacts"] == ["2026-10-05"]
    assert after["sfmc/clean/contacts"] == before["sfmc/clean/contacts"]
    # orders: clean kept 3 days (10-03 onwards); raw untouched
    assert after["sfmc/clean/orders"] == ["2026-10-03", "2026-10-04", "2026-10-05"]
    assert after["sfmc/raw/orders"] == before["sfmc/raw/orders"]

    observations = [e.event_specific_data.asset_observation for e in result.all_events
                    if e.event_type_value == "ASSET_OBSERVATION"]
    observed = {(o.asset_key.to_user_string(), o.partition, o.metadata["retention/deleted"].value)
                for o in observations}
    assert observed == {
        ("sfmc/raw/contacts", "2026-10-01", "raw"), ("sfmc/raw/contacts", "2026-10-02", "raw"),
        ("sfmc/raw/contacts", "2026-10-03", "raw"), ("sfmc/clean/contacts", "2026-10-02", "quarantine"),
        ("sfmc/clean/orders", "2026-10-01", "clean"), ("sfmc/clean/orders", "2026-10-02", "clean"),
    }
    # What a UI user sees on the partition: its latest event says the file was deleted, and why.
    with world.instance() as instance:
        latest = instance.fetch_observations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(["sfmc", "raw", "contacts"]), asset_partitions=["2026-10-01"]),
            limit=1).records[0].asset_observation
    assert latest.description.startswith("Deleted by retention (retention_days = 2)")

    again = _run_retention(world)  # idempotent: nothing left to delete
    assert again.success and _layout(world) == after
    assert not [e for e in again.all_events if e.event_type_value == "ASSET_OBSERVATION"]


def test_the_schedule_runs_retention_as_of_the_tick(world: World) -> None:
    schedule = definitions_for(world.config).resolve_schedule_def(f"{RETENTION_JOB}_schedule")
    assert schedule.cron_schedule == "30 3 * * *"
    # Both entered: a schedule context left open keeps the closed instance current for later tests.
    with dg.instance_for_test() as instance, dg.build_schedule_context(
            instance=instance, scheduled_execution_time=dt.datetime(2026, 10, 6, 3, 30, tzinfo=dt.timezone.utc),
    ) as context:
        request = schedule.evaluate_tick(context).run_requests[0]
    assert request.run_config == {"ops": {"apply_retention": {"config": {"as_of": AS_OF}}}}
    assert request.run_key == AS_OF

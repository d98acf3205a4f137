"""The `privacy_erasure` job: what the UI launches, run by Dagster with the launchpad's configuration.

Keys given as a file keep them out of Dagster's run storage (the run configuration only names the file);
the run records, on each partition it touched, an observation with the request id and the rows erased.
"""

from collections.abc import Iterator

import dagster as dg
import pytest

from sfmc_assets.defs.privacy.jobs import ERASURE_JOB
from sfmc_assets.lib.config import ProjectConfig
from sfmc_assets_tests.defs.conftest import definitions_for, resources_for
from sfmc_assets_tests.privacy.world import DAYS, World, make_world, scan_files, scan_lake

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
ROWS = {"Contacts_DE": 80, "Campaign_Engagement": 400, "Web_Activities": 100, "Orders": 100}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, config: ProjectConfig) -> Iterator[World]:
    world = make_world(tmp_path_factory.mktemp("job"), config, ROWS)
    run = world.materialize(DAYS[0], DAYS[2], dg.AssetSelection.all() - dg.AssetSelection.groups("segments"))
    assert run.success, [e.message for e in run.all_events if e.is_failure]
    yield world
    world.mc.stop()
    world.aep.stop()


def _launch(world: World, config: dict) -> dg.ExecuteInProcessResult:
    job = definitions_for(world.config).resolve_job_def(ERASURE_JOB)
    with world.instance() as instance:
        return job.execute_in_process(run_config={"ops": {"erase_contacts": {"config": config}}},
                                      instance=instance, resources=resources_for(world.mc, world.home, world.aep),
                                      raise_on_error=False)


def test_the_job_erases_keys_from_a_file_without_storing_them(world: World) -> None:
    keys = sorted(set(world.lake.read(["sfmc", "raw", "campaigns"], DAYS[1])["SubscriberKey"]))[:2]
    request = world.home / "request.txt"
    request.write_text(f"# ticket 4711\n{keys[0]}\n\n  {keys[1]}  # second\n")
    result = _launch(world, {"from_file": str(request), "wait_s": 30})
    assert result.success
    assert scan_lake(world.home / "lake", keys) == {}
    assert scan_files(world.dagster_home, keys) == {}  # only the file's path is in the run configuration
    observations = [e.event_specific_data.asset_observation for e in result.all_events
                    if e.event_type_value == "ASSET_OBSERVATION"]
    touched = {(o.asset_key.to_user_string(), o.partition) for o in observations}
    assert ("sfmc/raw/campaigns", DAYS[1]) in touched and ("sfmc/clean/campaigns", DAYS[1]) in touched
    assert all(o.metadata["rows_erased"].value > 0 and "privacy/request" in o.metadata for o in observations)
    jobs = [j for j in world.privacy_jobs() if j["action"] == "delete"]
    assert len(jobs) == 2 and all(j["status"] == "complete" for j in jobs)  # one Privacy Service job per contact


def test_the_job_fails_without_keys_and_names_why(world: World) -> None:
    result = _launch(world, {"contact_keys": ["   "]})
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "no contact key to erase" in failure.event_specific_data.error.to_string()

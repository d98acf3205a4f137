"""Frequencies: each data extension's `schedule` and `interval` become jobs and schedules that request the
right days, and an hourly data extension's today's partition exists and materialises."""

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from sfmc_assets.definitions import build_definitions
from sfmc_assets.lib.config import ProjectConfig, load_config
from sfmc_assets.lib.lake import ParquetLake
from sfmc_assets.lib.settings import config_path
from sfmc_assets.sandboxes.experience_platform import ExperiencePlatformSandbox
from sfmc_assets.sandboxes.marketing_cloud import MarketingCloudSandbox
from sfmc_assets_tests.defs.conftest import resources_for

UTC = dt.timezone.utc
PREFERENCES = {"name": "preferences", "external_key": "Channel_Preferences", "sync": "full",
               "primary_key": ["SubscriberKey", "Channel"], "schedule": "weekly", "interval": 2}


def configured(tmp_path: Path, extra: list[dict] | None = None, **by_name: dict) -> ProjectConfig:
    """The bundled configuration with some data extensions' settings changed, and `extra` ones added."""
    raw = yaml.safe_load(config_path().read_text())
    for de in raw["data_extensions"]:
        de.update(by_name.get(de["name"], {}))
    raw["data_extensions"] += extra or []
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_config(path)


Tick = Callable[[dg.Definitions, str, dt.datetime], Any]


@pytest.fixture
def tick(instance: dg.DagsterInstance) -> Tick:
    """Evaluate a schedule of `defs` at a given time, against the test's instance."""
    def _tick(defs: dg.Definitions, schedule: str, at: dt.datetime) -> Any:
        # Entered and exited: the context enters the instance, which stays current until the exit.
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=at,
                                       repository_def=defs.get_repository_def()) as context:
            return defs.resolve_schedule_def(schedule).evaluate_tick(context)
    return _tick


def requested(data: Any) -> list[tuple[str, list[str] | None]]:
    return [(r.partition_key, sorted(k.to_user_string() for k in r.asset_selection) if r.asset_selection else None)
            for r in data.run_requests or []]


def test_the_default_is_one_daily_job_at_two(tmp_path: Path) -> None:
    defs = build_definitions(load_config())
    repo = defs.get_repository_def()
    assert sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")) == [
        "privacy_erasure", "privacy_retention", "sfmc_daily_job"]  # personal data: docs/personal-data.md
    assert sorted((s.name, s.cron_schedule) for s in repo.schedule_defs) == [
        ("privacy_retention_schedule", "30 3 * * *"), ("sfmc_daily_job_schedule", "0 2 * * *")]


def test_frequencies_become_jobs_with_their_own_partitions_and_crons(tmp_path: Path) -> None:
    config = configured(tmp_path, [PREFERENCES], orders={"schedule": "hourly", "interval": 3},
                        activities={"schedule": "weekly"}, campaigns={"schedule": "once"})
    defs = build_definitions(config)
    jobs = {j.name: j for j in defs.get_repository_def().get_all_jobs() if j.name.startswith("sfmc_")}
    assert sorted(jobs) == ["sfmc_daily_job", "sfmc_every_2_weeks_job", "sfmc_every_3_hours_job",
                            "sfmc_once_job", "sfmc_weekly_job"]
    hourly = jobs["sfmc_every_3_hours_job"].partitions_def
    assert isinstance(hourly, dg.DailyPartitionsDefinition) and hourly.end_offset == 1
    assert jobs["sfmc_daily_job"].partitions_def.end_offset == 0
    crons = {s.name: s.cron_schedule for s in defs.get_repository_def().schedule_defs if s.name.startswith("sfmc_")}
    assert crons == {"sfmc_daily_job_schedule": "0 2 * * *", "sfmc_weekly_job_schedule": "0 2 * * 1",
                     "sfmc_every_2_weeks_job_schedule": "0 2 * * 1",
                     "sfmc_every_3_hours_job_schedule": ["0 */3 * * *", "0 2 * * *"]}  # once: none
    # The segment tables stay in the default job, with the contacts they read.
    daily = {k.to_user_string() for k in jobs["sfmc_daily_job"].asset_layer.executable_asset_keys}
    assert {"segments/contact_features", "sfmc/clean/contacts"} <= daily and "sfmc/raw/orders" not in daily


def test_the_hourly_schedule_targets_todays_partition(tmp_path: Path, tick: Tick) -> None:
    defs = build_definitions(configured(tmp_path, orders={"schedule": "hourly", "interval": 3}))
    at = dt.datetime(2026, 11, 28, 9, tzinfo=UTC)
    assert requested(tick(defs, "sfmc_every_3_hours_job_schedule", at)) == [("2026-11-28", None)]
    job = defs.resolve_job_def("sfmc_every_3_hours_job")
    assert job.partitions_def.get_partition_keys(current_time=at)[-1] == "2026-11-28"  # today exists
    # 02:00 is not an hour of every 3: the nightly run makes yesterday final (and re-reads the look-back).
    nightly = tick(defs, "sfmc_every_3_hours_job_schedule", dt.datetime(2026, 11, 28, 2, tzinfo=UTC))
    assert requested(nightly) == [("2026-11-26", None), ("2026-11-27", None)]
    # Every hour: 02:00 reads today and makes yesterday final in the same tick.
    defs = build_definitions(configured(tmp_path, orders={"schedule": "hourly"}))
    both = tick(defs, "sfmc_hourly_job_schedule", dt.datetime(2026, 11, 28, 2, tzinfo=UTC))
    assert [k for k, _ in requested(both)] == ["2026-11-26", "2026-11-27", "2026-11-28"]
    assert len({r.run_key for r in both.run_requests}) == 3


def test_key_reconciliation_of_an_hourly_data_extension_runs_nightly_only(tmp_path: Path, tick: Tick) -> None:
    defs = build_definitions(configured(tmp_path, orders={"schedule": "hourly", "reconcile_keys": "daily"}))
    noon = requested(tick(defs, "sfmc_hourly_job_schedule", dt.datetime(2026, 11, 28, 12, tzinfo=UTC)))
    assert noon == [("2026-11-28", ["aep/orders", "sfmc/clean/orders", "sfmc/raw/orders"])]
    night = requested(tick(defs, "sfmc_hourly_job_schedule", dt.datetime(2026, 11, 28, 2, tzinfo=UTC)))
    assert night[:2] == [("2026-11-26", None), ("2026-11-27", None)]  # deletes included


def test_every_n_days_reads_the_days_since_the_previous_run(tmp_path: Path, tick: Tick) -> None:
    defs = build_definitions(configured(tmp_path, orders={"schedule": "daily", "interval": 2}))
    due = tick(defs, "sfmc_every_2_days_job_schedule", dt.datetime(2026, 10, 11, 2, tzinfo=UTC))
    assert [k for k, _ in requested(due)] == ["2026-10-08", "2026-10-09", "2026-10-10"]  # 2 days + look-back
    skipped = tick(defs, "sfmc_every_2_days_job_schedule", dt.datetime(2026, 10, 12, 2, tzinfo=UTC))
    assert not skipped.run_requests and "every 2 days" in (skipped.skip_message or "")


def test_a_full_snapshot_is_taken_for_recent_days_only(tmp_path: Path, tick: Tick) -> None:
    defs = build_definitions(configured(tmp_path, [PREFERENCES], orders={"schedule": "weekly"}))
    monday = dt.datetime(2026, 11, 30, 2, tzinfo=UTC)
    weekly = requested(tick(defs, "sfmc_weekly_job_schedule", monday))
    assert [k for k, _ in weekly] == [f"2026-11-{d}" for d in range(22, 30)]  # 7 days + 1 of look-back
    snapshots = requested(tick(defs, "sfmc_every_2_weeks_job_schedule", monday))
    assert snapshots == [("2026-11-28", None), ("2026-11-29", None)]


@pytest.mark.parametrize(("change", "message"), [
    ({"interval": 0}, "interval 0 must be at least 1"),
    ({"schedule": "hourly", "interval": 5}, "must divide 24"),
    ({"schedule": "once", "interval": 2}, "remove `interval`"),
    ({"schedule": "weekly", "reconcile_keys": "daily"}, "`reconcile_keys: daily` runs with the daily read"),
    ({"schedule": "once", "reconcile_keys": "weekly"}, "no recurring run"),
    ({"schedule": "monthly"}, "data_extensions.3.schedule\n  Input should be 'once', 'hourly', 'daily' or"),
])
def test_invalid_frequencies_are_named_at_load_time(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(ValueError, match="invalid data extension configuration") as err:
        configured(tmp_path, orders=change)
    assert message in str(err.value) and ("orders" in str(err.value) or "monthly" in str(err.value))


def test_hourly_full_snapshots_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="preferences: `sync: full` reads the whole data extension"):
        configured(tmp_path, [PREFERENCES | {"schedule": "hourly", "interval": 1}])


def test_todays_partition_of_an_hourly_data_extension_materialises(
    fresh_mc_sandbox: MarketingCloudSandbox, aep_sandbox: ExperiencePlatformSandbox, tmp_path: Path,
    instance: dg.DagsterInstance, tick: Tick,
) -> None:
    """What the hourly schedule launches runs: today's rows so far, read and published."""
    defs = build_definitions(configured(tmp_path, orders={"schedule": "hourly"}))
    now = dt.datetime.now(UTC)
    request = requested(tick(defs, "sfmc_hourly_job_schedule", now.replace(minute=0, second=0, microsecond=0)))
    today = now.date().isoformat()
    assert request[-1] == (today, None)
    template = fresh_mc_sandbox.ground_truth("Orders").head(1).to_dicts()[0]
    written = now.replace(hour=0, minute=5, second=0, microsecond=0)
    fresh_mc_sandbox.upsert_rows("Orders", [template | {"OrderID": f"ORD-TODAY-{i}", "OrderDate": written}
                                            for i in range(3)])
    job = defs.resolve_job_def("sfmc_hourly_job")
    result = dg.materialize(list(defs.assets or []), partition_key=today, instance=instance,
                            resources=resources_for(fresh_mc_sandbox, tmp_path, aep_sandbox),
                            selection=list(job.asset_layer.executable_asset_keys))
    assert result.success
    clean = ParquetLake(str(tmp_path / "lake")).read(["sfmc", "clean", "orders"], today)
    assert sorted(clean["order_id"]) == ["ORD-TODAY-0", "ORD-TODAY-1", "ORD-TODAY-2"]
    published = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(["aep", "orders"])]
    assert published and published[0].materialization.metadata["records_out"].value == 3


def test_published_tables_are_due_as_often_as_their_data_extension_is_read(tmp_path: Path) -> None:
    defs = build_definitions(configured(tmp_path, orders={"schedule": "hourly", "interval": 3},
                                        activities={"schedule": "weekly", "reconcile_keys": "weekly"},
                                        campaigns={"schedule": "once"}))
    graph = defs.resolve_asset_graph()

    def freshness(key: str) -> object:
        return graph.get(dg.AssetKey(key.split("/"))).freshness_policy

    assert freshness("aep/orders") == dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(hours=4))
    assert freshness("aep/activities") == dg.FreshnessPolicy.cron(deadline_cron="0 6 * * 1",
                                                                  lower_bound_delta=dt.timedelta(days=7))
    assert freshness("aep/campaigns") is None  # read once, when launched
    assert freshness("aep/contacts") == freshness("segments/contact_features") == dg.FreshnessPolicy.cron(
        deadline_cron="0 6 * * *", lower_bound_delta=dt.timedelta(days=1))
    assert graph.get(dg.AssetKey(["sfmc", "raw", "orders"])).tags["sfmc/schedule"] == "hourly"
    for layer in ("raw", "clean", "deletes"):  # the tags the UI filters on, on every asset of the extension
        assert graph.get(dg.AssetKey(["sfmc", layer, "activities"])).tags["sfmc/schedule"] == "weekly", layer
    every_2_days = build_definitions(configured(tmp_path, orders={"schedule": "daily", "interval": 2}))
    assert every_2_days.resolve_asset_graph().get(dg.AssetKey(["aep", "orders"])).freshness_policy == \
        dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(days=2, hours=4))

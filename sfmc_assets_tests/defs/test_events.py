"""Tracking events materialised through Dagster against both sandboxes, over HTTP: every type, several days."""

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from sfmc_assets.lib.config import ProjectConfig
from sfmc_assets.lib.events import EVENTS, XDM_EVENT_TYPES, as_data_extension
from sfmc_assets.lib.extract import Window
from sfmc_assets.lib.lake import ParquetLake
from sfmc_assets.lib.marketing_cloud.types import PARSE_ERRORS
from sfmc_assets.sandboxes.experience_platform import ExperiencePlatformSandbox
from sfmc_assets.sandboxes.marketing_cloud import Fault, MarketingCloudSandbox
from sfmc_assets_tests.conftest import DATA_END, DATA_START
from sfmc_assets_tests.defs.conftest import definitions_for, resources_for
from sfmc_assets_tests.instances import memory_instance

DAYS = ["2026-10-02", "2026-10-03", "2026-10-04"]
EVENT_ASSETS = dg.AssetSelection.key_prefixes(["sfmc", "raw", "events"], ["sfmc", "clean", "events"],
                                              ["aep", "events"])
TRACKING_DATASET = "5ad0c0a1e0c7a5d000000005"


def run(defs: dg.Definitions, resources: dict, instance: dg.DagsterInstance, first: str, last: str,
        selection: dg.AssetSelection = EVENT_ASSETS) -> dg.ExecuteInProcessResult:
    """A ranged (backfill-style) run of the event assets over [first, last]."""
    return dg.materialize(
        list(defs.assets or []), resources=resources, instance=instance, raise_on_error=False, selection=selection,
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last})


def checks_by_day(result: dg.ExecuteInProcessResult,
                  instance: dg.DagsterInstance) -> dict[tuple[str, str, str], dg.AssetCheckEvaluation]:
    """Every day's check result, from the instance's event log (a failed step's evaluations included)."""
    logs = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    evaluations = [e.dagster_event.event_specific_data for e in logs if e.dagster_event]
    return {(e.asset_key.to_user_string(), e.check_name, str(e.partition)): e
            for e in evaluations if isinstance(e, dg.AssetCheckEvaluation) and e.partition}


def day_metadata(result: dg.ExecuteInProcessResult, key: str, day: str) -> dict[str, object]:
    events = [e.materialization for e in result.get_asset_materialization_events()
              if e.asset_key.to_user_string() == key and e.materialization.partition == day]
    return {k: v.value for k, v in events[-1].metadata.items()}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MarketingCloudSandbox, ExperiencePlatformSandbox]]:
    tmp = tmp_path_factory.mktemp("events_stack")
    mc = MarketingCloudSandbox(tmp / "mc", start=DATA_START, end=DATA_END, rows={"Contacts_DE": 500}).start()
    aep = ExperiencePlatformSandbox(tmp / "aep", processing_delay_s=0.05).start()
    yield mc, aep
    mc.stop()
    aep.stop()


@pytest.fixture
def env(stack, tmp_path: Path, config: ProjectConfig):
    mc, aep = stack
    mc.clear_faults()
    mc.reset_stats()
    with memory_instance() as instance:
        yield definitions_for(config), resources_for(mc, tmp_path, aep), instance, ParquetLake(str(tmp_path / "lake"))
    mc.clear_faults()


def test_every_event_type_materialises_for_several_days(env, stack) -> None:
    defs, resources, instance, lake = env
    mc, aep = stack
    result = run(defs, resources, instance, DAYS[0], DAYS[-1])
    assert result.success
    checks = checks_by_day(result, instance)
    for event in EVENTS.values():
        for day in DAYS:
            window = Window.day(day)
            truth = mc.tracking.ground_truth(event.object_type, window.start, window.end)
            raw = lake.read(["sfmc", "raw", "events", event.name], day)
            assert raw.height == truth.height > 0, (event.name, day)
            columns = [c for c in raw.columns if c != PARSE_ERRORS]
            assert raw.select(columns).sort(event.key).equals(truth.select(columns).sort(event.key))
            clean = lake.read(["sfmc", "clean", "events", event.name], day)
            assert clean.height == truth.height  # the sandbox's tracking holds no duplicate
            assert clean["event_at"].is_between(window.start, window.end, closed="left").all()
            for key, name in ((f"sfmc/raw/events/{event.name}", "matches_source_count"),
                              (f"sfmc/clean/events/{event.name}", "pandera_contract"),
                              (f"sfmc/clean/events/{event.name}", "reconciles_with_raw"),
                              (f"aep/events/{event.name}", "reconciles_with_clean")):
                assert checks[(key, name, day)].passed, (key, name, day)
            raw_md = day_metadata(result, f"sfmc/raw/events/{event.name}", day)
            assert raw_md["dagster/partition_row_count"] == raw_md["sfmc_objects_returned"] == truth.height
            assert raw_md["pages"] == max(1, -(-truth.height // 2500))
            assert "EventDate greaterThanOrEqual" in str(raw_md["sfmc_filter"])
            assert day_metadata(result, f"aep/events/{event.name}", day)["records_out"] == clean.height
    published = aep.live_records(TRACKING_DATASET)
    assert {r["eventType"] for r in published} == set(XDM_EVENT_TYPES.values())
    assert len(published) == sum(lake.read(["sfmc", "clean", "events", e.name], d).height
                                 for e in EVENTS.values() for d in DAYS)
    click = next(r for r in published if r["eventType"] == "directMarketing.emailClicked")
    assert click["_sfmcsandbox"]["emailTracking"]["url"].startswith("https://")
    assert click["identityMap"]["SFMCSubscriberKey"][0]["primary"] is True


def test_rerun_replaces_the_days_and_duplicate_records_are_removed(env, stack) -> None:
    defs, resources, instance, lake = env
    mc, aep = stack
    day = DAYS[1]
    assert run(defs, resources, instance, day, day).success
    mc.tracking.duplicate("OpenEvent", Window.day(day).start.date(), 4)
    try:
        result = run(defs, resources, instance, day, day)
        assert result.success
        window = Window.day(day)
        stored = mc.tracking.ground_truth("OpenEvent", window.start, window.end)
        raw = lake.read(["sfmc", "raw", "events", "open"], day)
        clean = lake.read(["sfmc", "clean", "events", "open"], day)
        assert raw.height == stored.height  # what Marketing Cloud returned, twice-served records included
        assert clean.height == stored.unique().height == raw.height - 4
        md = day_metadata(result, "sfmc/clean/events/open", day)
        assert md["duplicates_removed"] == 4
        assert checks_by_day(result, instance)[("sfmc/clean/events/open", "reconciles_with_raw", day)].passed
        # The day's batch replaced the first run's: one live batch per type and day.
        live = [b for b in aep.batches(TRACKING_DATASET) if b["live"] and f"events/open/{day}" in str(b.get("tags"))]
        assert len(live) == 1
    finally:
        mc.tracking.execute('DELETE FROM trk_open WHERE seq >= 1000000000')


def test_faults_mid_read_still_give_the_exact_day(env, stack) -> None:
    defs, resources, instance, lake = env
    mc, _ = stack
    day = DAYS[0]
    # SentEvent (two pages): the continuation cut mid-body (read again), then the token expiring at the
    # next continuation (renewed, replayed); OpenEvent's first answer malformed; ClickEvent throttled twice.
    mc.set_faults([Fault(route="soap", kind="truncate", key="SentEvent", after=1, times=1),
                   Fault(route="soap", kind="expire_token", key="SentEvent", after=3, times=1),
                   Fault(route="soap", kind="malformed", key="OpenEvent", times=1),
                   Fault(route="soap", kind="status", status=429, key="ClickEvent", times=2)])
    result = run(defs, resources, instance, day, day, dg.AssetSelection.key_prefixes(["sfmc", "raw", "events"]))
    assert result.success
    window = Window.day(day)
    for event in EVENTS.values():
        raw = lake.read(["sfmc", "raw", "events", event.name], day)
        assert raw.height == mc.tracking.ground_truth(event.object_type, window.start, window.end).height
    sent = day_metadata(result, "sfmc/raw/events/sent", day)
    assert sent["token_replays"] == 1 and sent["read_attempts"] == 2
    assert day_metadata(result, "sfmc/raw/events/open", day)["retries"] == 1
    assert day_metadata(result, "sfmc/raw/events/click", day)["retries"] == 2


def test_an_event_breaking_the_contract_blocks_only_its_day(env, stack) -> None:
    defs, resources, instance, lake = env
    mc, _ = stack
    bad_day = Window.day(DAYS[2])
    server = [(b.replace(tzinfo=None) - dt.timedelta(hours=6)) for b in (bad_day.start, bad_day.end)]
    mc.tracking.execute("""UPDATE trk_bounce SET "EventType" = 'Bogus' WHERE seq = (SELECT min(seq) FROM trk_bounce
                           WHERE "EventDate" >= ? AND "EventDate" < ?)""", server)
    try:
        result = run(defs, resources, instance, DAYS[1], DAYS[2],
                     dg.AssetSelection.key_prefixes(["sfmc", "raw", "events", "bounce"],
                                                    ["sfmc", "clean", "events", "bounce"]))
        assert not result.success
        checks = checks_by_day(result, instance)
        assert checks[("sfmc/clean/events/bounce", "pandera_contract", DAYS[1])].passed
        blocked = checks[("sfmc/clean/events/bounce", "pandera_contract", DAYS[2])]
        assert not blocked.passed and "event_type: isin" in str(blocked.metadata["failures_by_rule"].value)
        assert lake.exists(["sfmc", "clean", "events", "bounce"], DAYS[1])
        assert not lake.exists(["sfmc", "clean", "events", "bounce"], DAYS[2])
    finally:
        mc.tracking.execute("""UPDATE trk_bounce SET "EventType" = 'HardBounce' WHERE "EventType" = 'Bogus'""")


def test_a_refused_token_fails_every_day_naming_the_object(env, stack) -> None:
    defs, resources, instance, _ = env
    mc, _ = stack
    mc.set_faults([Fault(route="soap", kind="status", status=401, times=None)])
    result = run(defs, resources, instance, DAYS[0], DAYS[1], dg.AssetSelection.assets(dg.AssetKey(["sfmc", "raw", "events", "sent"])))
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    text = failure.step_failure_data.error.message
    assert "2 of 2 asset day(s) failed" in text and "SentEvent" in text and "Login failed" in text
    assert mc.stats()["soap"] <= 3  # the second day was not asked again after a refusal that cannot pass


def test_events_are_described_as_data_extensions_with_their_natural_key(config: ProjectConfig) -> None:
    click = as_data_extension(EVENTS["click"], config)
    assert click.key_columns(click.fields or ()) == ("SendID", "SubscriberKey", "EventDate", "URL")
    assert click.aep is not None and click.aep.id_columns == ["send_id", "contact_key", "event_at", "url"]
    assert click.aep.event_type is not None and click.aep.event_type.values == {"Click": "directMarketing.emailClicked"}

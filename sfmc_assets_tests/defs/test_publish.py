"""Publishing to the Experience Platform sandbox: extract -> clean -> gate -> publish, over HTTP."""

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest

from sfmc_assets.lib.config import ProjectConfig
from sfmc_assets.lib.lake import ParquetLake
from sfmc_assets.sandboxes.experience_platform import ExperiencePlatformSandbox
from sfmc_assets.sandboxes.experience_platform import Fault as AepFault
from sfmc_assets.sandboxes.marketing_cloud import MarketingCloudSandbox
from sfmc_assets_tests.defs.conftest import Materialize, make_materialize

PARTITION = "2026-10-03"
CHAIN = dg.AssetSelection.groups("sfmc_raw", "sfmc_clean", "aep_publish")


def _dataset(aep: ExperiencePlatformSandbox, name: str) -> str:
    return aep.discovery()["datasets"][name]


def _live(aep: ExperiencePlatformSandbox, dataset: str, label: str) -> list[dict]:
    return [b for b in aep.batches(dataset) if b["live"] and "sfmcAssetsLabel" in str(b.get("tags"))
            and label in str(b.get("tags"))]


def _failure(result: dg.ExecuteInProcessResult) -> str:
    return next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE
                ).step_failure_data.error.message


@pytest.fixture
def chain(materialize: Materialize) -> Materialize:
    def run(**kw: object) -> dg.ExecuteInProcessResult:
        return materialize(PARTITION, selection=CHAIN, **kw)
    return run


def test_published_records_equal_the_clean_rows(chain, aep_sandbox: ExperiencePlatformSandbox,
                                                 tmp_path: Path, config: ProjectConfig) -> None:
    result = chain()
    assert result.success
    lake = ParquetLake(str(tmp_path / "lake"))
    for de, dataset_name in (("contacts", "contacts"), ("campaigns", "engagement"), ("activities", "activities")):
        clean = lake.read(["sfmc", "clean", de], PARTITION)
        live = _live(aep_sandbox, _dataset(aep_sandbox, dataset_name), f"{de}/{PARTITION}")
        assert len(live) == 1, live
        batch = live[0]
        assert batch["status"] == "success" and batch["metrics"]["outputRecordCount"] == clean.height
        md = next(e for e in result.get_asset_materialization_events()
                  if e.asset_key == dg.AssetKey(["aep", de])).materialization.metadata
        assert md["records_out"].value == clean.height == md["clean_rows"].value
        assert md["batch_id"].value == batch["id"]  # success = every record passed the XDM validation
    profiles = [r for r in aep_sandbox.live_records(_dataset(aep_sandbox, "contacts"))
                if r["_sfmcsandbox"]["lifecycle"]["modifiedAt"].startswith(PARTITION)]
    contacts = lake.read(["sfmc", "clean", "contacts"], PARTITION)
    assert {p["_sfmcsandbox"]["lifecycle"]["subscriberKey"] for p in profiles} == set(contacts["contact_key"])
    sample = profiles[0]
    assert sample["identityMap"]["Email"][0]["primary"] is True
    assert sample["personalEmail"]["address"] == sample["personalEmail"]["address"].lower()
    assert all(None not in _values(p) for p in profiles)  # nulls are omitted, never sent


def _values(obj: object) -> list[object]:
    if isinstance(obj, dict):
        return [v for x in obj.values() for v in ([x] if not isinstance(x, dict | list) else _values(x))]
    if isinstance(obj, list):
        return [v for x in obj for v in _values(x)]
    return [obj]


def test_rerun_leaves_exactly_one_live_batch(chain, aep_sandbox: ExperiencePlatformSandbox) -> None:
    assert chain().success
    first = _live(aep_sandbox, _dataset(aep_sandbox, "engagement"), f"campaigns/{PARTITION}")
    assert chain().success
    second = _live(aep_sandbox, _dataset(aep_sandbox, "engagement"), f"campaigns/{PARTITION}")
    assert len(second) == 1 and second[0]["id"] != first[0]["id"]
    assert first[0]["id"] in second[0]["predecessors"] or first[0]["id"] in str(second[0]["predecessors"])


@pytest.mark.parametrize(
    ("fault", "expect"),
    [
        (AepFault(kind="http_error", route="upload", status=503, times=2), "recovers"),
        (AepFault(kind="http_error", route="complete", status=429, times=2), "recovers"),
        (AepFault(kind="expire_tokens", route="upload", times=1), "recovers"),
        (AepFault(kind="fail_batch", route="complete", times=None), "INGEST"),
        (AepFault(kind="stuck_processing", route="complete", times=None), "deadline"),
    ],
    ids=["upload-503", "complete-429", "expired-token", "failed-batch", "stuck-batch"],
)
def test_publish_faults(fault: AepFault, expect: str, mc_sandbox: MarketingCloudSandbox,
                        aep_sandbox: ExperiencePlatformSandbox, tmp_path: Path, instance: dg.DagsterInstance,
                        config: ProjectConfig) -> None:
    run = make_materialize(mc_sandbox, tmp_path, instance, config, aep_sandbox)
    assert run(PARTITION, selection=CHAIN).success  # a first, good publication
    dataset = _dataset(aep_sandbox, "contacts")
    before = _live(aep_sandbox, dataset, f"contacts/{PARTITION}")
    aep_sandbox.set_faults([fault])
    # A stuck batch meets a 3-s deadline; the other faults keep the default, which a loaded machine never reaches.
    faulty = make_materialize(mc_sandbox, tmp_path, instance, config, aep_sandbox, batch_deadline_s=3.0) \
        if expect == "deadline" else run
    result = faulty(PARTITION, selection=dg.AssetSelection.assets(dg.AssetKey(["aep", "contacts"])))
    aep_sandbox.clear_faults()
    after = _live(aep_sandbox, dataset, f"contacts/{PARTITION}")
    assert len(after) == 1  # never two live batches for a day
    if expect == "recovers":
        assert result.success and after[0]["id"] != before[0]["id"]
    else:
        assert not result.success
        message = _failure(result)
        assert expect in message and "contacts" in message and PARTITION in message and dataset in message
        assert after[0]["id"] == before[0]["id"]  # the previous good batch is still the live one


def test_wrong_sandbox_name_is_a_clear_error(mc_sandbox: MarketingCloudSandbox, aep_sandbox: ExperiencePlatformSandbox,
                                             tmp_path: Path, instance: dg.DagsterInstance, config: ProjectConfig) -> None:
    import json

    run = make_materialize(mc_sandbox, tmp_path, instance, config, aep_sandbox)
    path = tmp_path / "experience_platform.json"
    assert run(PARTITION, selection=CHAIN - dg.AssetSelection.groups("aep_publish")).success
    info = json.loads(path.read_text())
    path.write_text(json.dumps({**info, "sandbox_name": "dev"}))
    result = run(PARTITION, selection=dg.AssetSelection.assets(dg.AssetKey(["aep", "activities"])))
    assert not result.success
    message = _failure(result)
    assert "sandbox" in message.lower() and "dev" in message and info["client_secret"] not in message


def test_a_failed_gate_is_never_published(materialize_fresh: Materialize, fresh_mc_sandbox: MarketingCloudSandbox,
                                          aep_sandbox: ExperiencePlatformSandbox) -> None:
    fresh_mc_sandbox.inject_bad_rows("Web_Activities", "unmapped_value", dt.date(2026, 10, 4), n=1)
    result = materialize_fresh("2026-10-04", selection=CHAIN)
    assert not result.success
    done = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "sfmc/clean/activities" not in done and "aep/activities" not in done
    assert "aep/contacts" in done and "aep/campaigns" in done  # the other data extensions go on
    assert not _live(aep_sandbox, _dataset(aep_sandbox, "activities"), "activities/2026-10-04")


def test_a_day_over_the_small_file_limit_is_published_as_several_files_of_one_batch(
        mc_sandbox: MarketingCloudSandbox, tmp_path: Path, instance: dg.DagsterInstance,
        config: ProjectConfig) -> None:
    """The sandbox refuses files over its small-file limit (lowered from 256 MB to 16 KB here, and the
    resource told the same), so the day must arrive as several files; it is still one batch, replaced
    as one, with every clean row once."""
    limit = 16 * 1024
    with ExperiencePlatformSandbox(tmp_path / "aep", processing_delay_s=0.05, max_file_bytes=limit) as aep:
        run = make_materialize(mc_sandbox, tmp_path, instance, config, aep, max_file_bytes=limit)
        for attempt in (1, 2):  # the second publish of the day replaces the first, files and all
            result = run(PARTITION, selection=dg.AssetSelection.assets(
                ["sfmc", "raw", "campaigns"], ["sfmc", "clean", "campaigns"], ["aep", "campaigns"]))
            assert result.success, _failure(result)
            clean = ParquetLake(str(tmp_path / "lake")).read(["sfmc", "clean", "campaigns"], PARTITION)
            [live] = _live(aep, _dataset(aep, "engagement"), f"campaigns/{PARTITION}")
            assert len(live["files"]) > 1 and max(live["files"].values()) <= limit, (attempt, live["files"])
            assert live["metrics"]["outputRecordCount"] == clean.height
            ids = [r["_sfmcsandbox"]["engagement"]["engagementId"] for r in aep.live_records(_dataset(aep, "engagement"))]
            assert sorted(ids) == sorted(clean["engagement_id"].to_list())  # each row once, across the files
            md = result.get_asset_materialization_events()[-1].materialization.metadata
            assert md["files"].value == len(live["files"]) and md["file_bytes"].value == sum(live["files"].values())


def test_an_empty_day_is_published_as_nothing_and_retires_an_earlier_batch(
        materialize_fresh: Materialize, fresh_mc_sandbox: MarketingCloudSandbox,
        aep_sandbox: ExperiencePlatformSandbox) -> None:
    """A day with no rows is a valid day: no batch (Platform refuses empty files) when it never had one;
    when it had rows before, an empty replay retires them, so the dataset holds what the day holds: none."""
    never = "2026-10-09"  # after the sandbox's data: no rows in any data extension
    result = materialize_fresh(never, selection=CHAIN)
    assert result.success
    for de, name in (("contacts", "contacts"), ("campaigns", "engagement"), ("activities", "activities")):
        assert not [b for b in aep_sandbox.batches(_dataset(aep_sandbox, name)) if f"{de}/{never}" in str(b.get("tags"))]
        md = next(e for e in result.get_asset_materialization_events()
                  if e.asset_key == dg.AssetKey(["aep", de])).materialization.metadata
        assert md["batch_id"].value == "none" and md["dagster/partition_row_count"].value == 0
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks), [c for c in checks if not c.passed]

    assert materialize_fresh(PARTITION, selection=CHAIN).success
    dataset = _dataset(aep_sandbox, "engagement")
    assert _live(aep_sandbox, dataset, f"campaigns/{PARTITION}")[0]["metrics"]["outputRecordCount"] > 0
    start = dt.datetime.fromisoformat(f"{PARTITION}T00:00:00") - dt.timedelta(hours=6)  # server time, UTC-6
    removed = fresh_mc_sandbox.delete_rows("Campaign_Engagement", '"EventDate" >= ? AND "EventDate" < ?',
                                           [start, start + dt.timedelta(days=1)])
    assert removed > 0
    again = materialize_fresh(PARTITION, selection=CHAIN)
    assert again.success
    live = _live(aep_sandbox, dataset, f"campaigns/{PARTITION}")
    assert len(live) == 1 and live[0]["metrics"]["outputRecordCount"] == 0, live

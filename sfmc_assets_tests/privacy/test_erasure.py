"""Erasing a contact after a 7-day backfill: no byte of its e-mail or key anywhere, and it stays erased.

The whole chain (raw, clean, deletes, Experience Platform, segment tables) runs over 2026-10-01..07 in
one run, the way a backfill runs it, with a persistent Dagster instance; then `sfmc-assets erase` runs
as its own process. Before erasure every scanner finds the contact where it should be (positive
controls: a scanner that finds nothing proves nothing). After: not in any file of the lake (decoded),
the warehouse (queried, and its file replaced), the Dagster storage (raw bytes and the instance's own
view) or the Experience Platform sandbox's live records. Then the days are run again while Marketing
Cloud still holds the contact: the suppression list keeps it out, and the counts say so.
"""

import json
from collections.abc import Iterator

import dagster as dg
import polars as pl
import pytest

from sfmc_assets.lib.config import ProjectConfig
from sfmc_assets.lib.privacy.store import PrivacyStore
from sfmc_assets_tests.privacy.world import (
    DAYS,
    World,
    make_world,
    scan_experience_platform,
    scan_files,
    scan_instance,
    scan_lake,
    scan_warehouse,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
ROWS = {"Contacts_DE": 170, "Campaign_Engagement": 1500, "Web_Activities": 1500, "Orders": 1500,
        "Channel_Preferences": 30}


def _pick_contact(world: World) -> dict[str, str]:
    """A contact stored with an e-mail in Marketing Cloud's own casing and spaces (`  Ana.Silva3@X.NET `),
    with engagement and activity rows on several days."""
    contacts = world.mc.ground_truth("Contacts_DE")
    events = pl.concat([world.mc.ground_truth(k).select("SubscriberKey", pl.col(d).dt.date().alias("day"))
                        for k, d in (("Campaign_Engagement", "EventDate"), ("Web_Activities", "ActivityDate"))])
    busy = events.group_by("SubscriberKey").agg(pl.col("day").n_unique().alias("days")).filter(pl.col("days") >= 3)
    odd = contacts.filter(pl.col("EmailAddress") != pl.col("EmailAddress").str.strip_chars().str.to_lowercase())
    row = odd.join(busy, on="SubscriberKey").sort("SubscriberKey").row(0, named=True)
    return {"key": row["SubscriberKey"], "email": row["EmailAddress"].strip().lower(),
            "stored_email": row["EmailAddress"]}


@pytest.fixture(scope="module")
def erased(tmp_path_factory: pytest.TempPathFactory, config: ProjectConfig) -> Iterator[dict]:
    world = make_world(tmp_path_factory.mktemp("erasure"), config, ROWS)
    try:
        run = world.materialize(DAYS[0], DAYS[-1])
        assert run.success, [e.message for e in run.all_events if e.is_failure]
        contact = _pick_contact(world)
        needles = [contact["key"], contact["email"]]
        before = {"lake": scan_lake(world.home / "lake", needles),
                  "warehouse": scan_warehouse(world.warehouse_file, needles),
                  "aep": scan_experience_platform(world.aep, needles),
                  "dagster": scan_files(world.dagster_home, needles), "instance": scan_instance(world, needles),
                  "control": scan_files(world.dagster_home, DAYS)}
        inode = world.warehouse_file.stat().st_ino
        code, out = world.run_command("erase", "--contact-key", f"  {contact['key']} ", "--wait", "60", "--json")
        summary = json.loads(out[out.index("{"):])
        yield {"world": world, "contact": contact, "needles": needles, "before": before, "code": code,
               "output": out, "summary": summary, "inode": inode}
    finally:
        world.mc.stop()
        world.aep.stop()


def test_before_erasure_the_scanners_find_the_contact_where_it_belongs(erased: dict) -> None:
    before, needles = erased["before"], erased["needles"]
    assert {n for found in before["lake"].values() for n in found} == set(needles)
    assert any(p.startswith("sfmc/raw/contacts/") for p in before["lake"])
    assert any(p.startswith("sfmc/clean/orders/") for p in before["lake"])
    assert {"segments.contact_features", "segments.segment_membership"} <= set(before["warehouse"])
    assert len(before["aep"]) >= 3  # contacts (e-mail and key), campaigns, activities, orders
    assert before["control"]  # the byte scan does find text the Dagster storage holds (partition keys)
    # Nothing personal in the places nobody looks, even before the erasure: previews and samples are masked.
    assert before["dagster"] == {} and before["instance"] == []


def test_erase_reports_every_store_it_touched(erased: dict) -> None:
    assert erased["code"] == 0, erased["output"][-3000:]
    summary = erased["summary"]
    assert summary["status"] == "done" and summary["problems"] == []
    assert summary["stores_touched"] == ["experience_platform", "lake", "warehouse"]
    rows = summary["rows_erased"]
    for layer in ("raw", "clean"):
        for de in ("contacts", "campaigns", "activities", "orders"):
            assert rows[f"lake:sfmc/{layer}/{de}"] > 0, (layer, de)
    assert rows["lake:sfmc/raw/contacts"] == 1
    assert rows["warehouse:segments.contact_features"] >= 1
    assert summary["experience_platform"]["status"] == "complete"


def test_no_byte_of_the_contact_is_left_anywhere(erased: dict) -> None:
    world, needles = erased["world"], erased["needles"]
    assert scan_lake(world.home / "lake", needles) == {}
    assert scan_warehouse(world.warehouse_file, needles) == {}
    assert world.warehouse_file.stat().st_ino != erased["inode"]  # rewritten: no deleted rows left in free blocks
    assert scan_files(world.dagster_home, needles) == {}
    assert scan_instance(world, needles) == []
    assert scan_experience_platform(world.aep, needles) == {}
    assert not any(n.lower() in out.lower() for out in world.outputs for n in needles)


def test_the_audit_record_holds_no_personal_value(erased: dict) -> None:
    world = erased["world"]
    store = PrivacyStore(world.lake.base)
    record = store.path("requests", f"{erased['summary']['request_id']}.json").read_text()
    assert not any(n.lower() in record.lower() for n in erased["needles"])
    doc = json.loads(record)
    assert doc["status"] == "done" and len(doc["keys"]) == 1 and len(doc["keys"][0]) == 64  # a keyed hash
    assert doc["stores_touched"] == ["experience_platform", "lake", "warehouse"]
    assert doc["rows_erased"] == erased["summary"]["rows_erased"]
    assert doc["requested_at"] <= doc["finished_at"]
    # The Dagster UI shows which partitions lost rows, by request id and count only.
    with world.instance() as instance:
        records = instance.fetch_observations(dg.AssetKey(["sfmc", "clean", "campaigns"]), limit=50).records
        erasures = [r for r in records if "privacy/request" in r.asset_observation.metadata]
    assert erasures and all(r.asset_observation.metadata["rows_erased"].value > 0 for r in erasures)


def test_a_rerun_after_erasure_keeps_the_contact_out(erased: dict) -> None:
    world, needles = erased["world"], erased["needles"]
    run = world.materialize(DAYS[0], DAYS[-1])  # Marketing Cloud still holds the contact
    assert run.success, [e.message for e in run.all_events if e.is_failure]
    assert scan_lake(world.home / "lake", needles) == {}
    assert scan_warehouse(world.warehouse_file, needles) == {}
    assert scan_experience_platform(world.aep, needles) == {}
    assert scan_files(world.dagster_home, needles) == {}
    # The raw count check still reconciles: rows written + rows of erased contacts left out = the source's count.
    checks = [e.event_specific_data for e in run.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
              and e.event_specific_data.check_name == "matches_source_count"]
    days = [c for c in checks if c.partition is not None]  # each day's own result (the range summary aside)
    # contacts, campaigns, activities, orders, and the five tracking-event types
    assert len(days) == 7 * 9 and all(c.passed for c in checks)
    suppressed = sum(c.metadata["rows_suppressed"].value for c in days)
    total = erased["summary"]["rows_erased"]
    assert suppressed == sum(v for k, v in total.items() if k.startswith("lake:sfmc/raw/"))


def test_erasing_again_is_a_no_op(erased: dict) -> None:
    world = erased["world"]
    code, out = world.run_command("erase", "--contact-key", erased["contact"]["key"], "--json")
    assert code == 0, out[-3000:]
    again = json.loads(out[out.index("{"):])
    assert again["request_id"] == erased["summary"]["request_id"]  # the same request, resumed and complete
    assert again["rows_erased"] == erased["summary"]["rows_erased"]  # nothing more to erase
    assert len([j for j in world.privacy_jobs() if j["action"] == "delete"]) == 1  # not submitted twice

"""An erasure killed mid-way (SIGKILL, the process gone) and run again: it resumes and completes.

Killed while rewriting a partition: the partition still holds the contact (the rewrite was staged, never
committed), the journal says the request is running with that partition pending; the rerun with the
same keys resumes the same request, erases exactly the rows that are left, counts each row once and
does not submit Experience Platform's deletion twice. Killed right after Adobe created the Privacy
Service job but before the journal recorded it: the rerun finds the job by its user key and adopts it.
"""

import json
import os
import signal
import time
from collections.abc import Iterator

import dagster as dg
import polars as pl
import pytest

from sfmc_assets.lib.config import ProjectConfig
from sfmc_assets.lib.experience_platform import ExperiencePlatformClient
from sfmc_assets.lib.experience_platform import privacy as privacy_service
from sfmc_assets.lib.privacy.journal import ErasureJournal, request_id
from sfmc_assets.lib.privacy.keys import load_hasher
from sfmc_assets.lib.privacy.store import PrivacyStore
from sfmc_assets_tests.privacy.world import DAYS, World, make_world, scan_lake

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
ROWS = {"Contacts_DE": 120, "Campaign_Engagement": 900, "Web_Activities": 600, "Orders": 600}
CHAIN = dg.AssetSelection.all() - dg.AssetSelection.groups("segments")
BIG_DAY = "2026-10-04"
RAW_CAMPAIGNS = ["sfmc", "raw", "campaigns"]


@pytest.fixture
def world(tmp_path_factory: pytest.TempPathFactory, config: ProjectConfig) -> Iterator[World]:
    world = make_world(tmp_path_factory.mktemp("crash"), config, ROWS)
    run = world.materialize(DAYS[0], DAYS[2], CHAIN)
    assert run.success, [e.message for e in run.all_events if e.is_failure]
    yield world
    world.mc.stop()
    world.aep.stop()


def _contact_with_events(world: World) -> str:
    raw = world.lake.read(RAW_CAMPAIGNS, DAYS[1])
    return raw.group_by("SubscriberKey").len().sort("len", "SubscriberKey", descending=[True, False])["SubscriberKey"][0]


def _big_day(world: World, key: str, copies: int = 12_000) -> int:
    """A large raw partition (a busy day) that holds the contact's rows among ~2.5M others; its row count."""
    store = world.lake
    source = store.read(RAW_CAMPAIGNS, DAYS[1])
    noon = pl.datetime(2026, 10, 4, 12, time_zone="UTC")
    base = source.with_columns(noon.alias("EventDate"))
    filler = base.filter(pl.col("SubscriberKey") != key)
    big = pl.concat([base, *[filler.with_columns(pl.col("EngagementID") + f"-{i}") for i in range(copies // 10)]])
    with store.writer(RAW_CAMPAIGNS, BIG_DAY, big.schema) as writer:
        writer.metadata.update(store.file_metadata(RAW_CAMPAIGNS, DAYS[1]))  # the fields it was read with
        for chunk in big.iter_slices(250_000):
            writer.write(chunk)
    return big.filter(pl.col("SubscriberKey") == key).height


def _journal(world: World) -> dict:
    folder = world.home / "lake" / "_privacy" / "requests"
    files = list(folder.glob("*.json")) if folder.exists() else []
    return json.loads(files[0].read_text()) if files else {}


def _kill_when_pending(world: World, proc, where: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        doc = _journal(world)  # replaced atomically: never read half-written
        state = doc.get("steps", {}).get("lake", {}).get("partitions", {}).get(where, {})
        if state.get("state") == "pending":
            break
        assert proc.poll() is None, f"the erasure ended before it reached {where}: {proc.communicate()[0][-2000:]}"
        assert time.monotonic() < deadline, f"the erasure never reached {where}"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_killed_mid_rewrite_then_resumed(world: World) -> None:
    key = _contact_with_events(world)
    rows_big = _big_day(world, key)
    raw_rows = sum(world.lake.read(RAW_CAMPAIGNS, d).filter(pl.col("SubscriberKey") == key).height
                   for d in world.lake.partitions(RAW_CAMPAIGNS))
    assert rows_big >= 1 and raw_rows > rows_big
    where = f"sfmc/raw/campaigns/{BIG_DAY}"
    _kill_when_pending(world, world.command("erase", "--contact-key", key), where)

    doc = _journal(world)
    assert doc["status"] == "running" and doc["attempts"] == 1
    assert doc["steps"]["experience_platform"]["status"] == "submitted"  # submitted before any rewrite
    assert any(s["state"] == "done" for s in doc["steps"]["lake"]["partitions"].values())
    big = world.lake.read(RAW_CAMPAIGNS, BIG_DAY)  # the kill left the old file, whole: never half a partition
    assert big.filter(pl.col("SubscriberKey") == key).height == rows_big

    code, out = world.run_command("erase", "--contact-key", key, "--json")
    assert code == 0, out[-3000:]
    summary = json.loads(out[out.index("{"):])
    doc = _journal(world)
    assert summary["status"] == "done" and doc["attempts"] == 2
    assert summary["rows_erased"]["lake:sfmc/raw/campaigns"] == raw_rows  # each row counted once
    assert doc["steps"]["lake"]["partitions"][where] == {"state": "done", "rows": rows_big}
    assert len([j for j in world.privacy_jobs() if j["action"] == "delete"]) == 1  # not submitted twice
    assert scan_lake(world.home / "lake", [key]) == {}  # staged leftovers included


def test_killed_after_the_privacy_job_was_created_adopts_it(world: World) -> None:
    """Adobe created the deletion job, the journal still says `submitting` (the answer never got recorded)."""
    key = _contact_with_events(world)
    store = PrivacyStore(world.lake.base)
    hasher = load_hasher(store, create=True)
    assert hasher is not None
    rid = request_id([hasher.digest(key)])
    journal = ErasureJournal.open(store, hasher, [key], "gdpr")
    journal.step("experience_platform")["status"] = "submitting"
    journal.save()
    with ExperiencePlatformClient.from_discovery(world.aep.discovery()) as client:
        created = privacy_service.submit_deletion(
            client, privacy_service.user_entries(f"sfmc-{rid[:12]}-0", [("SFMCSubscriberKey", key)]), "gdpr")
    code, out = world.run_command("erase", "--contact-key", key, "--json")
    assert code == 0, out[-3000:]
    summary = json.loads(out[out.index("{"):])
    assert [j["job_id"] for j in summary["experience_platform"]["jobs"]] == [created[0].job_id]
    assert len(world.privacy_jobs()) == 1  # adopted, not created again
    assert summary["status"] == "done" and scan_lake(world.home / "lake", [key]) == {}

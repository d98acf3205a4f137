"""A run killed with SIGKILL mid-extract or mid-publish, then run again from the CLI.

The run is `dagster asset materialize` in its own process group (what a launcher starts), against both
sandboxes over HTTP. After the kill: no partial partition is visible (files appear only complete, and no
materialisation was recorded); the rerun completes, and Experience Platform holds exactly one live batch
for the day (a batch the killed run left processing is aborted before the new one is created).

Also here, because it needs separate processes too: two runs publishing the same day at once (runs the
instance's tag limits do not queue, e.g. a one-day run inside a running backfill) take turns on the day's
lock (`defs/locks.py`), so the second replaces the first's batch instead of racing it.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from sfmc_assets.lib.extract import Window
from sfmc_assets.lib.lake import ParquetLake
from sfmc_assets.sandboxes.experience_platform import ExperiencePlatformSandbox
from sfmc_assets.sandboxes.marketing_cloud import Fault, MarketingCloudSandbox
from sfmc_assets_tests.conftest import DATA_END, DATA_START

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # daemon ticks and process starts add up on 2 cores
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PARTITION = "2026-10-03"
SELECT = "key:sfmc/raw/campaigns,key:sfmc/clean/campaigns,key:aep/campaigns"


@dataclass
class World:
    home: Path
    mc: MarketingCloudSandbox
    aep: ExperiencePlatformSandbox

    def env(self) -> dict[str, str]:
        return {**os.environ, "SFMC_ASSETS_HOME": str(self.home), "DAGSTER_HOME": str(self.home / "dagster_home"),
                "SFMC_ASSETS_EXECUTOR": "in_process"}

    def start_run(self, select: str = SELECT, log: Path | None = None) -> subprocess.Popen:
        out = log.open("w") if log else subprocess.DEVNULL
        return subprocess.Popen(
            [str(BIN / "dagster"), "asset", "materialize", "-m", "sfmc_assets.definitions", "--select", select,
             "--partition", PARTITION], cwd=REPO, env=self.env(), stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)

    def rerun(self) -> None:
        out = subprocess.run(
            [str(BIN / "dagster"), "asset", "materialize", "-m", "sfmc_assets.definitions", "--select", SELECT,
             "--partition", PARTITION], cwd=REPO, env=self.env(), capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]

    def lake(self) -> ParquetLake:
        return ParquetLake(str(self.home / "lake"))

    def live_batches(self) -> list[dict]:
        dataset = self.aep.discovery()["datasets"]["engagement"]
        return [b for b in self.aep.batches(dataset) if b["live"] and f"campaigns/{PARTITION}" in str(b.get("tags"))]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    home = tmp_path / "home"
    (home / "dagster_home").mkdir(parents=True)
    shutil.copy(REPO / "deploy" / "dagster.dev.yaml", home / "dagster_home" / "dagster.yaml")
    mc = MarketingCloudSandbox(tmp_path / "mc", start=DATA_START, end=DATA_END,
                               rows={"Contacts_DE": 100, "Campaign_Engagement": 1000, "Web_Activities": 100}).start()
    aep = ExperiencePlatformSandbox(tmp_path / "aep", processing_delay_s=60.0).start()
    (home / "sandboxes").mkdir()
    (home / "sandboxes" / "marketing_cloud.json").write_text(json.dumps(mc.discovery()))
    (home / "sandboxes" / "experience_platform.json").write_text(json.dumps(aep.discovery()))
    yield World(home, mc, aep)
    mc.stop()
    aep.stop()


def _kill_when(proc: subprocess.Popen, condition: Callable[[], bool], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "the run never reached the point to kill it at"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _materialized(world: World, key: list[str]) -> bool:
    with dg.DagsterInstance.from_config(str(world.home / "dagster_home")) as instance:
        return PARTITION in instance.get_materialized_partitions(dg.AssetKey(key))


def test_killed_mid_extract(world: World) -> None:
    world.mc.set_faults([Fault(route="rowset", kind="latency", latency_ms=3000, times=None)])
    run = world.start_run()
    _kill_when(run, lambda: world.mc.stats().get("rowset", 0) >= 1)  # a page request is in flight
    world.mc.clear_faults()
    assert not world.lake().exists(["sfmc", "raw", "campaigns"], PARTITION)  # nothing half-written is visible
    assert not _materialized(world, ["sfmc", "raw", "campaigns"])
    world.aep.processing_delay_s = 0.1
    world.rerun()
    window = Window.day(PARTITION)
    truth = set(world.mc.ground_truth("Campaign_Engagement", window.start, window.end)["EngagementID"])
    clean = world.lake().read(["sfmc", "clean", "campaigns"], PARTITION)["engagement_id"]
    assert set(clean) == truth and clean.is_unique().all()
    assert len(world.live_batches()) == 1


def test_killed_mid_publish(world: World) -> None:
    run = world.start_run()
    _kill_when(run, lambda: world.aep.stats().get("complete", 0) >= 1)  # batch completed, Platform processing
    orphan = next(b for b in world.aep.batches() if f"campaigns/{PARTITION}" in str(b.get("tags")))
    assert orphan["status"] == "processing" and not _materialized(world, ["aep", "campaigns"])
    world.aep.processing_delay_s = 0.1
    world.rerun()
    live = world.live_batches()
    assert len(live) == 1 and live[0]["id"] != orphan["id"]
    settled = next(b for b in world.aep.batches() if b["id"] == orphan["id"])
    assert settled["status"] in ("aborted", "failed") and not settled["live"]  # it can never go live
    window = Window.day(PARTITION)
    truth = world.mc.ground_truth("Campaign_Engagement", window.start, window.end)
    assert live[0]["metrics"]["outputRecordCount"] == truth.height


def test_two_runs_publishing_the_same_day_at_once_leave_one_live_batch(world: World) -> None:
    world.aep.processing_delay_s = 0.1
    world.rerun()  # the day extracted, cleaned and published once
    # The first publish to complete its batch is held in processing until the other run is seen waiting
    # for the day: the two overlap however slowly their processes start on a loaded machine.
    world.aep.processing_delay_s = 600
    logs = [world.home / f"publish_{i}.log" for i in range(2)]
    runs = [world.start_run("key:aep/campaigns", log) for log in logs]
    deadline = time.monotonic() + 240
    while not any("waiting up to" in log.read_text() for log in logs):  # one of them waits for the other
        assert time.monotonic() < deadline and all(r.poll() is None for r in runs), [log.read_text()[-2000:] for log in logs]
        time.sleep(0.2)
    world.aep.processing_delay_s = 0.1
    world.aep.process_now()
    for run, log in zip(runs, logs, strict=True):
        assert run.wait(timeout=300) == 0, log.read_text()[-3000:]
    batches = sorted((b for b in world.aep.batches() if f"campaigns/{PARTITION}" in str(b.get("tags"))),
                     key=lambda b: b["created"])
    assert [b["status"] for b in batches] == ["inactive", "inactive", "success"], batches  # replaced, live
    _, first, second = batches
    assert second["created"] >= first["completed"], "two publishes of the same day overlapped"
    assert second["predecessors"] == [first["id"]]  # the second replaced the first
    assert [b["id"] for b in world.live_batches()] == [second["id"]]

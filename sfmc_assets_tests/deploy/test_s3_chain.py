"""The whole chain for one day with the lake on S3 (`SFMC_ASSETS_LAKE_URI=s3://...`), as deployed.

`dagster asset materialize` runs in its own process (what a run launcher starts) with the lake on a local
S3 API (moto's server), both sandboxes over HTTP and the default DuckDB warehouse. It is killed with
SIGKILL while a data extension's pages are being written, after another's partition was committed: only
complete partitions are visible, and nothing is recorded as materialised that is not in the bucket. The
rerun then completes raw, clean, publish and segments exactly: every partition equals the source's rows,
one live Experience Platform batch per data extension, one set of segment rows for the day.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from sfmc_assets.lib.config import ProjectConfig
from sfmc_assets.lib.extract import Window
from sfmc_assets.lib.lake import ParquetLake
from sfmc_assets.lib.warehouse import Warehouse
from sfmc_assets.sandboxes.experience_platform import ExperiencePlatformSandbox
from sfmc_assets.sandboxes.marketing_cloud import Fault, MarketingCloudSandbox
from sfmc_assets_tests.conftest import DATA_END, DATA_START
from sfmc_assets_tests.deploy.conftest import S3

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PARTITION = "2026-10-01"  # the first partition: the segment windows need no earlier day
KEYS = {"contacts": "contact_key", "campaigns": "engagement_id", "activities": "activity_id"}


@dataclass
class World:
    home: Path
    lake_uri: str
    s3: S3
    mc: MarketingCloudSandbox
    aep: ExperiencePlatformSandbox

    def env(self) -> dict[str, str]:
        return {**os.environ, **self.s3.env, "SFMC_ASSETS_HOME": str(self.home),
                "DAGSTER_HOME": str(self.home / "dagster_home"), "SFMC_ASSETS_EXECUTOR": "in_process",
                "SFMC_ASSETS_LAKE_URI": self.lake_uri}

    def command(self) -> list[str]:
        return [str(BIN / "dagster"), "asset", "materialize", "-m", "sfmc_assets.definitions", "--select", "*",
                "--partition", PARTITION]

    def lake(self) -> ParquetLake:
        return ParquetLake(self.lake_uri)

    def materialized(self, key: list[str]) -> bool:
        with dg.DagsterInstance.from_config(str(self.home / "dagster_home")) as instance:
            return PARTITION in instance.get_materialized_partitions(dg.AssetKey(key))


@pytest.fixture
def world(tmp_path: Path, s3: S3) -> Iterator[World]:
    home = tmp_path / "home"
    (home / "dagster_home").mkdir(parents=True)
    shutil.copy(REPO / "deploy" / "dagster.dev.yaml", home / "dagster_home" / "dagster.yaml")
    mc = MarketingCloudSandbox(tmp_path / "mc", start=DATA_START, end=DATA_END,
                               rows={"Contacts_DE": 100, "Campaign_Engagement": 600, "Web_Activities": 600}).start()
    aep = ExperiencePlatformSandbox(tmp_path / "aep", processing_delay_s=0.1).start()
    (home / "sandboxes").mkdir()
    (home / "sandboxes" / "marketing_cloud.json").write_text(json.dumps(mc.discovery()))
    (home / "sandboxes" / "experience_platform.json").write_text(json.dumps(aep.discovery()))
    yield World(home, f"s3://{s3.bucket()}/sfmc", s3, mc, aep)
    mc.stop()
    aep.stop()


def _kill_mid_write(world: World) -> list[str]:
    """Start the run and SIGKILL it once a raw partition is committed and the next one is being read."""
    world.mc.set_faults([Fault(route="rowset", kind="latency", latency_ms=2500, times=None)])
    proc = subprocess.Popen(world.command(), cwd=REPO, env=world.env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, start_new_session=True)
    lake, deadline = world.lake(), time.monotonic() + 240
    committed: list[str] = []
    requests_then = 0
    while True:
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "the run never reached the point to kill it at"
        if not committed:
            committed = [n for n in KEYS if lake.exists(["sfmc", "raw", n], PARTITION)]
            requests_then = world.mc.stats().get("rowset", 0)
        elif world.mc.stats().get("rowset", 0) > requests_then:  # the next data extension is being read
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    world.mc.clear_faults()
    return committed


def test_chain_on_s3_killed_mid_write_then_rerun_completes_exactly(world: World, config: ProjectConfig) -> None:
    committed = _kill_mid_write(world)
    window = Window.day(PARTITION)
    lake = world.lake()
    truth = {de.name: world.mc.ground_truth(de.external_key, window.start, window.end)
             for de in config.data_extensions if de.name in KEYS}
    pk = {de.name: de.primary_key[0] for de in config.data_extensions if de.name in KEYS}
    visible = [n for n in KEYS if lake.exists(["sfmc", "raw", n], PARTITION)]
    assert committed and set(visible) < set(KEYS)  # one committed, at least the one in flight missing
    for name in visible:  # what is visible is whole
        assert set(lake.read(["sfmc", "raw", name], PARTITION)[pk[name]]) == set(truth[name][pk[name]])
    for name in KEYS:
        for layer in ("raw", "clean"):
            if world.materialized(["sfmc", layer, name]):
                assert lake.exists(["sfmc", layer, name], PARTITION), f"{layer}/{name} recorded but not written"

    out = subprocess.run(world.command(), cwd=REPO, env=world.env(), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    for name, key in KEYS.items():
        raw = lake.read(["sfmc", "raw", name], PARTITION)
        assert raw.height == truth[name].height > 0 and set(raw[pk[name]]) == set(truth[name][pk[name]])
        clean = lake.read(["sfmc", "clean", name], PARTITION)
        assert clean.height == truth[name].height and clean[key].is_unique().all()
        live = [b for b in world.aep.batches() if b["live"] and f"{name}/{PARTITION}" in str(b.get("tags"))]
        assert len(live) == 1 and live[0]["metrics"]["outputRecordCount"] == truth[name].height
    wh = Warehouse(world.home / "warehouse.duckdb")
    features = wh.query("SELECT * FROM segments.contact_features WHERE as_of_date = ?", [window.start.date()])
    contacts = lake.read(["sfmc", "clean", "contacts"], PARTITION)
    assert features.height == contacts.height and features["contact_key"].is_unique().all()
    members = wh.query("SELECT segment, contact_key FROM segments.segment_membership WHERE as_of_date = ?",
                       [window.start.date()])
    assert members.height > 0 and not members.is_duplicated().any()
    assert set(members["contact_key"]) <= set(features["contact_key"])
    assert not (world.home / "lake").exists()  # nothing went to local disk

"""A whole installation on disk for the personal-data tests: both sandboxes, a Dagster home, the lake, the
warehouse, and the `sfmc-assets` command run as its own process against them.

The scanners look for a value the way someone auditing the disks would, after decoding what is
compressed: Parquet files are decoded column by column (zstd pages hide text from a byte search),
DuckDB tables are queried (its string compression hides text too), SQLite files and logs are searched
as raw bytes (SQLite stores text as it is), Experience Platform's live records as the JSON it serves.
Matching is case-insensitive: raw partitions hold e-mails as Marketing Cloud does (`  Ana.Silva3@EXAMPLE.NET `).
"""

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq

from sfmc_assets.lib.config import ProjectConfig
from sfmc_assets.lib.lake import ParquetLake
from sfmc_assets.sandboxes.experience_platform import ExperiencePlatformSandbox
from sfmc_assets.sandboxes.marketing_cloud import MarketingCloudSandbox
from sfmc_assets_tests.defs.conftest import definitions_for, resources_for

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DAYS = [f"2026-10-0{d}" for d in range(1, 8)]


@dataclass
class World:
    home: Path
    mc: MarketingCloudSandbox
    aep: ExperiencePlatformSandbox
    config: ProjectConfig
    config_file: Path | None = None
    outputs: list[str] = field(default_factory=list)  # what the command printed, every time

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster_home"

    @property
    def lake(self) -> ParquetLake:
        return ParquetLake(str(self.home / "lake"))

    @property
    def warehouse_file(self) -> Path:
        return self.home / "warehouse.duckdb"

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.dagster_home))

    def materialize(self, first: str, last: str, selection: dg.AssetSelection | None = None) -> dg.ExecuteInProcessResult:
        """One run over the days `first`..`last` (what a backfill of those days runs: single-run assets)."""
        defs = definitions_for(self.config)
        tags = ({"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
                if first != last else {})
        with self.instance() as instance:
            return dg.materialize(list(defs.assets or []), resources=resources_for(self.mc, self.home, self.aep),
                                  instance=instance, raise_on_error=False, selection=selection, tags=tags,
                                  partition_key=first if first == last else None)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SFMC_", "AEP_", "DAGSTER_"))}
        env.update({"SFMC_ASSETS_HOME": str(self.home), "DAGSTER_HOME": str(self.dagster_home)})
        if self.config_file:
            env["SFMC_ASSETS_CONFIG"] = str(self.config_file)
        return env

    def command(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([str(BIN / "sfmc-assets"), *args], cwd=REPO, env=self.env(), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)

    def run_command(self, *args: str, timeout: float = 300) -> tuple[int, str]:
        proc = self.command(*args)
        out, _ = proc.communicate(timeout=timeout)
        self.outputs.append(out)
        return proc.returncode, out

    def privacy_jobs(self) -> list[dict]:
        """Every Privacy Service job the Experience Platform sandbox holds (all regulations)."""
        path = self.aep.state_dir / "privacy_jobs.json"
        return list(json.loads(path.read_text()).values()) if path.exists() else []


def make_world(root: Path, config: ProjectConfig, rows: dict[str, int], config_file: Path | None = None) -> World:
    home = root / "home"
    (home / "dagster_home").mkdir(parents=True)
    shutil.copy(REPO / "deploy" / "dagster.dev.yaml", home / "dagster_home" / "dagster.yaml")
    mc = MarketingCloudSandbox(root / "mc", start=dt.date(2026, 10, 1), end=dt.date(2026, 10, 8), rows=rows).start()
    aep = ExperiencePlatformSandbox(root / "aep", processing_delay_s=0.05).start()
    (home / "sandboxes").mkdir()
    (home / "sandboxes" / "marketing_cloud.json").write_text(json.dumps(mc.discovery()))
    (home / "sandboxes" / "experience_platform.json").write_text(json.dumps(aep.discovery()))
    return World(home, mc, aep, config, config_file)


# -- scanners: each returns where the needles were found ---------------------------------------------


def _found(text: str, needles: Iterable[str]) -> list[str]:
    low = text.lower()
    return [n for n in needles if n.lower() in low]


def scan_lake(lake_dir: Path, needles: list[str]) -> dict[str, list[str]]:
    """Every file under the lake: Parquet decoded (values and footer), anything else as bytes."""
    hits = {}
    for path in sorted(p for p in lake_dir.rglob("*") if p.is_file()):
        text = path.read_bytes().decode("utf-8", "replace")
        try:
            table = pq.read_table(path)
            meta = pq.read_metadata(path).metadata or {}
            text += json.dumps(table.to_pylist(), default=str) + str(meta)
        except Exception:  # not Parquet (the privacy store's JSON): its bytes are its text
            pass
        if found := _found(text, needles):
            hits[str(path.relative_to(lake_dir))] = found
    return hits


def scan_warehouse(path: Path, needles: list[str]) -> dict[str, list[str]]:
    """Every value of every table, as text."""
    hits: dict[str, list[str]] = {}
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute("SELECT table_schema, table_name FROM information_schema.tables").fetchall()
        for schema, table in tables:
            rows = con.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall()
            if found := _found(json.dumps(rows, default=str), needles):
                hits[f"{schema}.{table}"] = found
    return hits


def scan_files(folder: Path, needles: list[str]) -> dict[str, list[str]]:
    """Every file as raw bytes (SQLite run and event storage, compute logs, schedules)."""
    return {str(p.relative_to(folder)): found for p in sorted(folder.rglob("*"))
            if p.is_file() and (found := _found(p.read_bytes().decode("utf-8", "replace"), needles))}


def scan_instance(world: World, needles: list[str]) -> list[str]:
    """What the instance serves (also values SQLite split over overflow pages): runs, events, metadata."""
    hits = []
    with world.instance() as instance:
        for run in instance.get_runs():
            if _found(dg.serialize_value(run), needles):
                hits.append(f"run {run.run_id}")
            for entry in instance.all_logs(run.run_id):
                if _found(dg.serialize_value(entry), needles):
                    hits.append(f"event {entry.dagster_event_type} of run {run.run_id}")
    return hits


def scan_experience_platform(aep: ExperiencePlatformSandbox, needles: list[str]) -> dict[str, list[str]]:
    """The live records of every dataset, as served."""
    return {ds: found for ds in aep.discovery()["datasets"].values()
            if (found := _found(json.dumps(aep.live_records(ds)), needles))}


def variant(config: ProjectConfig, changes: dict[str, dict]) -> ProjectConfig:
    """The configuration with some data extensions' entries changed (nested blocks merged, `None` removes)."""
    raw = config.model_dump(mode="json")

    def merge(target: dict, update: dict) -> None:
        for key, value in update.items():
            if value is None:
                target.pop(key, None)
            elif isinstance(value, dict) and isinstance(target.get(key), dict):
                merge(target[key], value)
            else:
                target[key] = value

    for entry in raw["data_extensions"]:
        merge(entry, changes.get(entry["name"], {}))
    return ProjectConfig.model_validate(raw)

"""The code location loads, and its asset graph is what we mean it to be (snapshot)."""

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from sfmc_assets.definitions import build_definitions
from sfmc_assets.defs.catalog.assets import CATALOG_GROUP
from sfmc_assets.defs.schedules import partitions_to_run
from sfmc_assets.lib.config import load_config
from sfmc_assets.lib.events import configured

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    return build_definitions()


def test_definitions_load(defs: dg.Definitions) -> None:
    dg.Definitions.validate_loadable(defs)
    assert defs.resolve_job_def("sfmc_daily_job")
    assert defs.resolve_schedule_def("sfmc_daily_job_schedule")
    assert defs.resolve_sensor_def("notify_on_run_failure")


def test_asset_graph_snapshot(defs: dg.Definitions, snapshot) -> None:
    graph = defs.resolve_asset_graph()
    summary = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        summary[key.to_user_string()] = {
            "deps": sorted(d.to_user_string() for d in node.parent_keys),
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "owners": list(node.owners),
            "partitions": str(node.partitions_def),
            "checks": sorted(
                (c.name, graph.get_check_spec(c).blocking) for c in node.check_keys
            ),
            "pools": sorted(node.pools or []),
            "freshness": repr(node.freshness_policy) if node.freshness_policy else None,
            "has_description": bool(node.description),
            "has_column_schema": "dagster/column_schema" in node.metadata,
        }
    assert summary == snapshot


def test_every_gate_is_blocking_and_every_asset_is_described(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description and node.owners and node.kinds and node.tags.get("layer"), key
    for key in graph.get_all_asset_keys():  # bundled configuration (fields listed): columns shown before a run
        node = graph.get(key)
        if node.group_name != CATALOG_GROUP:  # the catalog lists the tenant's data extensions: no rows
            assert node.metadata["dagster/column_schema"].columns, key
        if key.path[0] == "aep":
            assert node.metadata["dagster/column_lineage"].deps_by_column, key
    contract_checks = [c for c in graph.asset_check_keys if c.name == "pandera_contract"]
    config = load_config()
    assert len(contract_checks) == len(config.data_extensions) + len(configured(config))  # + tracking events
    assert all(graph.get_check_spec(c).blocking for c in contract_checks)


_FORK_AFTER_PRELOAD = """
import os, sys, time
import polars as pl
import sfmc_assets.preload  # what the step executor's fork server imports: the definitions, built
pid = os.fork()
if pid == 0:
    frame = pl.DataFrame({"a": list(range(200_000))})
    for _ in range(10):
        frame.group_by("a").len().sort("a")
    os._exit(0)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    if os.waitpid(pid, os.WNOHANG)[0]:
        sys.exit(0)
    time.sleep(0.1)
os.kill(pid, 9)
sys.exit("a process forked after the definitions loaded hung in Polars")
"""


def test_loading_the_definitions_runs_no_polars() -> None:
    """Step processes are forked from a server that has loaded the definitions (`sfmc_assets.preload`). Had
    any Polars query run while they loaded, its thread pool would be started there, and every forked step
    would deadlock on its first parallel Polars call (a datetime literal is enough)."""
    out = subprocess.run([sys.executable, "-c", _FORK_AFTER_PRELOAD], capture_output=True, text=True, timeout=300,
                         check=False)
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.parametrize(
    ("tick", "lookback", "expected"),
    [
        (dt.datetime(2026, 11, 28, 2, tzinfo=dt.timezone.utc), 1, ["2026-11-26", "2026-11-27"]),
        (dt.datetime(2026, 11, 28, 2, tzinfo=dt.timezone.utc), 0, ["2026-11-27"]),
        (dt.datetime(2027, 1, 1, 2, tzinfo=dt.timezone.utc), 2, ["2026-12-29", "2026-12-30", "2026-12-31"]),
    ],
)
def test_partitions_to_run(tick: dt.datetime, lookback: int, expected: list[str]) -> None:
    assert partitions_to_run(tick, lookback) == expected


def test_schedule_requests_yesterday_and_the_lookback(defs: dg.Definitions) -> None:
    schedule = defs.resolve_schedule_def("sfmc_daily_job_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    # The context enters the instance (making it current) until it is exited: always use it in `with`.
    with dg.instance_for_test() as instance, dg.build_schedule_context(
        instance=instance, scheduled_execution_time=dt.datetime(2026, 11, 28, 2, tzinfo=dt.timezone.utc),
        repository_def=defs.get_repository_def(),
    ) as context:
        requests = schedule.evaluate_tick(context).run_requests
    assert [r.partition_key for r in requests] == ["2026-11-26", "2026-11-27"]
    assert len({r.run_key for r in requests}) == 2


def test_schedule_never_requests_partitions_before_the_start() -> None:
    built = build_definitions()
    schedule = built.resolve_schedule_def("sfmc_daily_job_schedule")
    with dg.instance_for_test() as instance, dg.build_schedule_context(
        instance=instance, scheduled_execution_time=dt.datetime(2026, 10, 2, 2, tzinfo=dt.timezone.utc),
        repository_def=built.get_repository_def(),
    ) as context:
        requests = schedule.evaluate_tick(context).run_requests
    assert [r.partition_key for r in requests] == ["2026-10-01"]


def test_a_module_scaffolded_under_defs_is_loaded(tmp_path: Path) -> None:
    """The project is dg-native: `dg scaffold defs` writes under `defs/` and `dg list defs` shows it."""
    shutil.copytree(REPO / "sfmc_assets", tmp_path / "sfmc_assets", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}  # the copy, not the installed package
    dg_cli = str(Path(sys.executable).parent / "dg")
    subprocess.run([dg_cli, "scaffold", "defs", "dagster.asset", "probe.py"], cwd=tmp_path, env=env,
                   check=True, capture_output=True)
    assert (tmp_path / "sfmc_assets" / "defs" / "probe.py").exists()
    listed = subprocess.run([dg_cli, "list", "defs", "--json"], cwd=tmp_path, env=env, check=True,
                            capture_output=True, text=True)
    keys = {a["asset_key"] for a in json.loads(listed.stdout)["assets"]}
    assert "probe" in keys and "sfmc/raw/contacts" in keys


@pytest.mark.parametrize("name", ["dagster.dev.yaml", "dagster.prod.yaml"])
def test_instance_files_are_valid(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    import yaml
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config_schema

    for var in ("DAGSTER_PG_HOST", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB"):
        monkeypatch.setenv(var, "x")
    raw = yaml.safe_load((Path(__file__).parents[1] / "deploy" / name).read_text())
    result = process_config(dagster_instance_config_schema(), raw)
    assert result.success, result.errors

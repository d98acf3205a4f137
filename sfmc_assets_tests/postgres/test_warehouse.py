"""The warehouse with several writers at once, on both backends, and the segment assets on PostgreSQL.

When run workers on several machines write segment days at once, the warehouse is PostgreSQL
(`SFMC_ASSETS_WAREHOUSE=postgresql://...`, docs/deploy.md); one machine keeps the DuckDB file. Both are
held to the same contract here: processes replacing overlapping days concurrently leave every day with
exactly one write (none lost, none doubled, none mixed), and the segment assets produce the same tables
and check results on PostgreSQL as on DuckDB.

The PostgreSQL cases need the server `make test` starts (DAGSTER_PG_* variables); without it they skip.
The URL carries no password: it comes from PGPASSWORD, as documented for deployments.
"""

import datetime as dt
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import dagster as dg
import polars.selectors as cs
import psycopg2
import pytest
from polars.testing import assert_frame_equal

from sfmc_assets.lib.config import ProjectConfig
from sfmc_assets.lib.warehouse import PostgresWarehouse, Warehouse, open_warehouse
from sfmc_assets.resources import WarehouseResource
from sfmc_assets.sandboxes.marketing_cloud import MarketingCloudSandbox
from sfmc_assets_tests.defs.conftest import definitions_for, resources_for
from sfmc_assets_tests.instances import memory_instance
from sfmc_assets_tests.postgres.warehouse_writer import TABLE, one_write

HAS_PG = bool(os.environ.get("DAGSTER_PG_HOST"))
needs_pg = pytest.mark.skipif(not HAS_PG, reason="DAGSTER_PG_HOST is not set: no PostgreSQL server")
DAYS = [dt.date(2026, 10, d) for d in range(1, 7)]
WRITERS, ROUNDS = 4, 6
PARTITION = "2026-10-01"  # the first partition: its segment windows need no earlier day


def _admin(sql: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE refuse to run in one)."""
    with closing(psycopg2.connect(host=os.environ["DAGSTER_PG_HOST"], port=os.environ["DAGSTER_PG_PORT"],
                                  user=os.environ["DAGSTER_PG_USER"], password=os.environ["DAGSTER_PG_PASSWORD"],
                                  dbname=os.environ["DAGSTER_PG_DB"])) as con:
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute(sql)


@pytest.fixture
def pg_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh database for the test; its URL has no password (PGPASSWORD has it)."""
    name = f"warehouse_{uuid.uuid4().hex[:10]}"
    _admin(f"CREATE DATABASE {name}")
    monkeypatch.setenv("PGPASSWORD", os.environ["DAGSTER_PG_PASSWORD"])
    yield (f"postgresql://{os.environ['DAGSTER_PG_USER']}@{os.environ['DAGSTER_PG_HOST']}:"
           f"{os.environ['DAGSTER_PG_PORT']}/{name}")
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["duckdb", pytest.param("postgresql", marks=needs_pg)])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "duckdb":
        return str(tmp_path / "warehouse.duckdb")
    return request.getfixturevalue("pg_url")


@pytest.mark.timeout(300)
def test_concurrent_writers_leave_every_day_written_once(location: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-m", "sfmc_assets_tests.postgres.warehouse_writer", location,
                               str(w), str(ROUNDS), ",".join(d.isoformat() for d in DAYS), str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in range(WRITERS)]
    go.touch()
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, (out + err)[-3000:]  # 3: a writer saw a day that was not one write
    per_day = open_warehouse(location).query(
        f"""SELECT as_of_date, count(*) AS n, count(DISTINCT contact_key) AS keys, min(writer) AS w0,
                   max(writer) AS w1, min(round) AS r0, max(round) AS r1
            FROM segments.{TABLE} GROUP BY as_of_date ORDER BY as_of_date""")
    assert per_day["as_of_date"].to_list() == DAYS  # no day lost
    for day in per_day.iter_rows(named=True):
        assert one_write(day), f"{day}: not exactly one write (rows of two writes mixed, or doubled)"


@needs_pg
def test_the_url_may_carry_no_password_and_errors_never_show_one(pg_url: str) -> None:
    secret = "s3cr3t-not-the-password"
    wh = PostgresWarehouse(pg_url.replace("@", f":{secret}@", 1))
    assert secret not in str(wh) and secret not in repr(wh.url)
    with pytest.raises(psycopg2.OperationalError) as failed:  # the wrong inline password is refused...
        wh.query("SELECT 1")
    assert secret not in str(failed.value)  # ...without being echoed
    assert open_warehouse(pg_url).query("SELECT ? AS x, '100%' AS pct", [7]).row(0) == (7, "100%")


@needs_pg
@pytest.mark.timeout(600)
def test_segment_assets_on_postgres_equal_duckdb(
    mc_sandbox: MarketingCloudSandbox, tmp_path: Path, config: ProjectConfig, pg_url: str
) -> None:
    defs = definitions_for(config)
    assets = list(defs.assets or [])
    resources = resources_for(mc_sandbox, tmp_path)
    with memory_instance() as instance:
        upstream = dg.AssetSelection.groups("sfmc_raw", "sfmc_clean", "segments")
        assert dg.materialize(assets, partition_key=PARTITION, resources=resources, instance=instance,
                              selection=upstream).success
        on_pg = dg.materialize(assets, partition_key=PARTITION, instance=instance,
                               resources={**resources, "warehouse": WarehouseResource(path=pg_url)},
                               selection=dg.AssetSelection.groups("segments"))
    assert on_pg.success
    checks = on_pg.get_asset_check_evaluations()
    assert len(checks) == 3 and all(c.passed for c in checks)  # the membership checks' SQL ran on PostgreSQL
    duck, pg = Warehouse(tmp_path / "warehouse.duckdb"), open_warehouse(pg_url)
    for table, order in (("contact_features", "contact_key"), ("segment_membership", "segment, contact_key")):
        sql = f"SELECT * FROM segments.{table} WHERE as_of_date = ? ORDER BY {order}"
        expected = duck.query(sql, [dt.date.fromisoformat(PARTITION)])
        # DuckDB names UTC by its session zone (Etc/UTC); the same instants, written as UTC.
        expected = expected.with_columns(cs.datetime("us", "*").dt.convert_time_zone("UTC"))
        assert expected.height > 0
        assert_frame_equal(pg.query(sql, [dt.date.fromisoformat(PARTITION)]), expected)

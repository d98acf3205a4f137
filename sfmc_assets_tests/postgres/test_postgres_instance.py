"""A real partition materialised with PostgreSQL as the Dagster instance storage (runs, events, schedules).

The production instance (deploy/dagster.prod.yaml) keeps everything in PostgreSQL; this test runs the raw +
clean contacts chain against such an instance and reads the run, the materializations and the
`pandera_contract` check evaluation back, through Dagster and straight from the tables with SQL.

It needs a server: CI starts a throw-away one (`eval "$(bash scripts/ci/postgres.sh start <dir>)"`, see
scripts/test.sh), which exports DAGSTER_PG_HOST/PORT/USER/PASSWORD/DB. Without them the test is skipped.
"""

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
import yaml
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from sfmc_assets.lib.config import ProjectConfig
from sfmc_assets.sandboxes.marketing_cloud import MarketingCloudSandbox
from sfmc_assets_tests.defs.conftest import make_materialize
from sfmc_assets_tests.defs.lock_contract import CHECKS

PARTITION = "2026-10-03"
RAW = dg.AssetKey(["sfmc", "raw", "contacts"])
CLEAN = dg.AssetKey(["sfmc", "clean", "contacts"])
CONTRACT_CHECK = "pandera_contract"
PROD_INSTANCE = Path(__file__).resolve().parents[2] / "deploy" / "dagster.prod.yaml"
PG_ENV = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB")

pytestmark = pytest.mark.skipif(
    not os.environ.get("DAGSTER_PG_HOST"),
    reason="DAGSTER_PG_HOST is not set: no PostgreSQL server to test against "
           '(start one with: eval "$(bash scripts/ci/postgres.sh start /tmp/pg)")',
)


def instance_yaml() -> dict[str, object]:
    """The production instance settings, its port read from DAGSTER_PG_PORT (the test server's is not 5432)."""
    settings = yaml.safe_load(PROD_INSTANCE.read_text(encoding="utf-8"))
    db = settings["storage"]["postgres"]["postgres_db"]
    # The production file reads the connection from the environment: the test relies on the same names.
    assert {k: db[k] for k in ("hostname", "username", "password", "db_name")} == {
        "hostname": {"env": "DAGSTER_PG_HOST"}, "username": {"env": "DAGSTER_PG_USER"},
        "password": {"env": "DAGSTER_PG_PASSWORD"}, "db_name": {"env": "DAGSTER_PG_DB"},
    }
    db["port"] = {"env": "DAGSTER_PG_PORT"}
    # SQLAlchemy 2.1 maps a bare `postgresql://` to psycopg (v3), which is not installed: dagster-postgres
    # brings psycopg2. Without an explicit scheme in the production file the instance cannot connect.
    db.setdefault("scheme", "postgresql+psycopg2")
    return settings


@pytest.fixture
def pg_instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    missing = [name for name in PG_ENV if not os.environ.get(name)]
    assert not missing, f"DAGSTER_PG_HOST is set but not {missing}"
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance_yaml()), encoding="utf-8")
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        yield instance
    finally:
        instance.dispose()


@pytest.fixture
def pg_connection() -> Iterator["psycopg2.extensions.connection"]:
    conn = psycopg2.connect(
        host=os.environ["DAGSTER_PG_HOST"], port=int(os.environ["DAGSTER_PG_PORT"]),
        user=os.environ["DAGSTER_PG_USER"], password=os.environ["DAGSTER_PG_PASSWORD"],
        dbname=os.environ["DAGSTER_PG_DB"], connect_timeout=10,
    )
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.close()


def test_materialization_is_stored_in_postgres(
    pg_instance: dg.DagsterInstance, pg_connection: "psycopg2.extensions.connection",
    mc_sandbox: MarketingCloudSandbox, config: ProjectConfig, tmp_path: Path,
) -> None:
    assert isinstance(pg_instance.run_storage, PostgresRunStorage)
    assert isinstance(pg_instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(pg_instance.schedule_storage, PostgresScheduleStorage)

    run = make_materialize(mc_sandbox, tmp_path, pg_instance, config)
    result = run(PARTITION, selection="sfmc/raw/contacts+")
    assert result.success
    run_id = result.run_id

    # Read back through a second instance built from the same dagster.yaml: nothing comes from memory.
    reread = dg.DagsterInstance.from_config(str(tmp_path / "dagster_home"))
    try:
        stored_run = reread.get_run_by_id(run_id)
        assert stored_run is not None
        assert stored_run.status == dg.DagsterRunStatus.SUCCESS
        assert stored_run.tags["dagster/partition"] == PARTITION
        for key in (RAW, CLEAN):
            event = reread.get_latest_materialization_event(key)
            assert event is not None and event.run_id == run_id, key
            assert event.asset_materialization is not None
            assert event.asset_materialization.partition == PARTITION
        checks = [
            e.asset_check_evaluation for e in reread.all_logs(
                run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        ]
        contract = [c for c in checks if c and c.asset_key == CLEAN and c.check_name == CONTRACT_CHECK]
        assert len(contract) == 1 and contract[0].passed
    finally:
        reread.dispose()

    # And straight from PostgreSQL's tables: the run, its events and the check execution are rows there.
    with pg_connection.cursor() as cur:
        cur.execute("SELECT status, partition FROM runs WHERE run_id = %s", (run_id,))
        assert cur.fetchall() == [("SUCCESS", PARTITION)]
        cur.execute(
            "SELECT asset_key, partition FROM event_logs WHERE run_id = %s AND dagster_event_type = %s",
            (run_id, "ASSET_MATERIALIZATION"),
        )
        assert sorted(cur.fetchall()) == sorted((k.to_string(), PARTITION) for k in (RAW, CLEAN))
        cur.execute(
            "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = %s",
            (run_id, "ASSET_CHECK_EVALUATION"),
        )
        assert cur.fetchone()[0] == len(checks) > 0
        cur.execute(
            "SELECT execution_status FROM asset_check_executions"
            " WHERE run_id = %s AND asset_key = %s AND check_name = %s AND partition = %s",
            (run_id, CLEAN.to_string(), CONTRACT_CHECK, PARTITION),
        )
        assert cur.fetchall() == [("SUCCEEDED",)]
    # No SQLite fallback anywhere in the instance's home.
    assert not [p for p in (tmp_path / "dagster_home").rglob("*.db")]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_partition_lock_on_postgres(check: Callable[[dg.DagsterInstance], None],
                                    pg_instance: dg.DagsterInstance) -> None:
    """The day lock of publishing (defs/locks.py) as a PostgreSQL advisory lock, shared by every run."""
    assert getattr(pg_instance.run_storage, "postgres_url", None)
    check(pg_instance)

"""A data extension new to the configuration, from `sfmc-assets discover --write-config` to Experience Platform
with no hand edit: the written file passes `dg check defs`, and its raw, clean and publish assets
materialise through `build_definitions` against both sandboxes."""

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from sfmc_assets.cli import main
from sfmc_assets.lib.config import load_config
from sfmc_assets.lib.lake import ParquetLake
from sfmc_assets.lib.settings import config_path
from sfmc_assets.sandboxes.experience_platform import EVENT_CLASS, ExperiencePlatformSandbox
from sfmc_assets.sandboxes.marketing_cloud import MarketingCloudSandbox
from sfmc_assets_tests.defs.conftest import make_materialize
from sfmc_assets_tests.defs.test_raw_and_clean import check_evaluations, mat_metadata

UTC = dt.timezone.utc
DAY = "2026-10-03"
REPO = Path(__file__).resolve().parents[2]
FIELDS = [
    {"name": "MemberID", "type": "Text", "length": 36, "isPrimaryKey": True},
    {"name": "SubscriberKey", "type": "Text", "length": 254, "isNullable": False},
    {"name": "EmailAddress", "type": "EmailAddress", "length": 254, "isNullable": False},
    {"name": "Tier", "type": "Text", "length": 20, "isNullable": False},
    {"name": "Points", "type": "Number"},
    {"name": "Balance", "type": "Decimal", "length": 12, "scale": 2},
    {"name": "IsActive", "type": "Boolean"},
    {"name": "Joined On", "type": "Date"},
    {"name": "ModifiedDate", "type": "Date", "isNullable": False},
]
_S, _DT = {"type": "string"}, {"type": "string", "format": "date-time"}
#: The schema a user creates in Platform for the new dataset, with the paths the written mapping suggests.
SCHEMA = {
    "$id": "https://ns.adobe.com/sfmcsandbox/schemas/loyalty-members", "title": "Loyalty members",
    "meta:class": EVENT_CLASS, "type": "object", "required": ["_id", "timestamp"],
    "properties": {
        "_id": _S, "timestamp": _DT, "identityMap": {"type": "identityMap"},
        "_sfmcsandbox": {"type": "object", "properties": {"loyaltyMembers": {"type": "object", "properties": {
            "memberId": _S, "subscriberKey": _S, "emailAddress": _S, "tier": _S, "points": {"type": "integer"},
            "balance": {"type": "number"}, "isActive": {"type": "boolean"}, "joinedOn": _DT,
            "modifiedDate": _DT}}}},
    },
}


def _rows(n: int) -> list[dict[str, object]]:
    start = dt.datetime(2026, 10, 2, 20, tzinfo=UTC)
    return [{"MemberID": f"M-{i:04d}", "SubscriberKey": f"CUST-{i:07d}", "EmailAddress": f"member{i}@example.com",
             "Tier": ("Gold", "Silver", "Bronze")[i % 3], "Points": i * 10 if i % 4 else None,
             "Balance": f"{i * 1.25:.2f}", "IsActive": None if i % 5 == 0 else bool(i % 2),
             "Joined On": None if i % 3 == 0 else dt.datetime(2025, 1, 1 + i % 28, tzinfo=UTC),
             "ModifiedDate": start + dt.timedelta(hours=i)} for i in range(n)]


@pytest.mark.timeout(600)
def test_a_written_entry_materialises_and_publishes_without_edits(
    fresh_mc_sandbox: MarketingCloudSandbox, aep_sandbox: ExperiencePlatformSandbox, tmp_path: Path,
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch,
) -> None:
    fresh_mc_sandbox.create_data_extension("Loyalty_Members", "Loyalty Members", FIELDS, rows=_rows(60),
                                           delta="ModifiedDate", description="Members of the loyalty programme")
    dataset = aep_sandbox.create_dataset("Loyalty members", aep_sandbox.register_schema(SCHEMA))
    home = tmp_path / "home"
    (home / "sandboxes").mkdir(parents=True)
    (home / "sandboxes" / "marketing_cloud.json").write_text(json.dumps(fresh_mc_sandbox.discovery()))
    for var in ("SFMC_CLIENT_ID", "SFMC_CLIENT_SECRET", "SFMC_AUTH_BASE_URI", "SFMC_ASSETS_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SFMC_ASSETS_HOME", str(home))
    target = tmp_path / "config.yaml"
    target.write_text(config_path().read_text())

    result = CliRunner().invoke(main, ["discover", "--write-config", "Loyalty_Members", "--config", str(target),
                                       "--dataset", dataset, "--xdm-tenant", "sfmcsandbox"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    checked = subprocess.run([str(Path(sys.executable).parent / "dg"), "check", "defs"], cwd=REPO,
                             env={**os.environ, "SFMC_ASSETS_CONFIG": str(target)}, capture_output=True, text=True,
                             timeout=300)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    config = load_config(target)
    members = config.data_extension("loyalty_members")
    assert (members.delta_column, members.primary_key, members.aep and members.aep.xdm_class) == (
        "ModifiedDate", ("MemberID",), "experience_event")
    materialize = make_materialize(fresh_mc_sandbox, tmp_path, instance, config, aep_sandbox)
    run = materialize(DAY, selection=["sfmc/raw/loyalty_members", "sfmc/clean/loyalty_members",
                                      "aep/loyalty_members"])
    assert run.success
    truth = fresh_mc_sandbox.ground_truth("Loyalty_Members", dt.datetime(2026, 10, 3, tzinfo=UTC),
                                          dt.datetime(2026, 10, 4, tzinfo=UTC))
    clean = ParquetLake(str(tmp_path / "lake")).read(["sfmc", "clean", "loyalty_members"], DAY)
    assert clean.height == truth.height > 0
    assert sorted(clean["member_id"]) == sorted(truth["MemberID"])
    checks = check_evaluations(run)
    assert checks[("sfmc/clean/loyalty_members", "pandera_contract")].passed
    publish = checks[("aep/loyalty_members", "reconciles_with_clean")]
    assert publish.passed and publish.metadata["records_accepted"].value == clean.height
    records = aep_sandbox.live_records(dataset)
    assert len(records) == clean.height
    assert {r["_sfmcsandbox"]["loyaltyMembers"]["tier"] for r in records} <= {"Gold", "Silver", "Bronze"}
    assert all(r["identityMap"]["SFMCSubscriberKey"][0]["primary"] for r in records)
    preview = str(mat_metadata(run, ["sfmc", "raw", "loyalty_members"])["preview"])
    assert "@example.com" not in preview  # the EmailAddress field is masked in the UI

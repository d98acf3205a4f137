"""Real partitions materialised through Dagster against the Marketing Cloud sandbox."""

import datetime as dt
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from sfmc_assets.lib.config import ProjectConfig
from sfmc_assets.lib.extract import Window
from sfmc_assets.lib.lake import ParquetLake
from sfmc_assets.lib.marketing_cloud.types import PARSE_ERRORS
from sfmc_assets.sandboxes.marketing_cloud import MarketingCloudSandbox
from sfmc_assets_tests.defs.conftest import Materialize

PARTITION = "2026-10-03"
UTC = dt.timezone.utc


def mat_metadata(result: dg.ExecuteInProcessResult, key: list[str]) -> dict[str, object]:
    events = [e for e in result.get_asset_materialization_events()
              if e.asset_key == dg.AssetKey(key)]
    assert len(events) == 1, f"{key} materialised {len(events)} times"
    return {k: v.value for k, v in events[0].materialization.metadata.items()}


def check_evaluations(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {
        (e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()
    }


def test_partition_matches_the_sandbox_ground_truth(
    materialize: Materialize, mc_sandbox: MarketingCloudSandbox, config: ProjectConfig, tmp_path: Path
) -> None:
    # Segments are left out: their day needs the days before it (segments tests cover them).
    result = materialize(PARTITION, selection=dg.AssetSelection.all() - dg.AssetSelection.groups("segments"))
    assert result.success
    lake = ParquetLake(str(tmp_path / "lake"))
    window = Window.day(PARTITION)
    checks = check_evaluations(result)
    for de in config.data_extensions:
        truth = mc_sandbox.ground_truth(de.external_key, window.start, window.end)
        raw = lake.read(["sfmc", "raw", de.name], PARTITION)
        assert raw.height == truth.height > 0
        pk = de.key_columns(de.fields or ())[0]
        assert raw.drop(PARSE_ERRORS).sort(pk).equals(truth.select(raw.drop(PARSE_ERRORS).columns).sort(pk))
        clean = lake.read(["sfmc", "clean", de.name], PARTITION)
        assert clean.height == truth.height  # the sandbox's default data is valid and unique
        assert checks[(f"sfmc/clean/{de.name}", "pandera_contract")].passed
        source = checks[(f"sfmc/raw/{de.name}", "matches_source_count")]
        assert source.passed and source.metadata["sfmc_reported_count"].value == truth.height
        assert checks[(f"sfmc/clean/{de.name}", "reconciles_with_raw")].metadata["unaccounted"].value == 0
        assert checks[(f"aep/{de.name}", "reconciles_with_clean")].passed
        md = mat_metadata(result, ["sfmc", "raw", de.name])
        assert md["dagster/partition_row_count"] == truth.height
        assert md["sfmc_reported_count"] == truth.height
        assert md["window_start_utc"] == "2026-10-03T00:00:00+00:00"
        assert "ModifiedDate gte '2026-10-02T18:00:00'" in str(md["sfmc_filter"]) or de.name != "contacts"
        assert isinstance(md["dagster/column_schema"], dg.TableSchema)
    contacts = lake.read(["sfmc", "clean", "contacts"], PARTITION)
    assert (contacts["email"] == contacts["email"].str.strip_chars().str.to_lowercase()).all()
    assert contacts["modified_at"].dt.date().unique().to_list() == [dt.date(2026, 10, 3)]


def test_previews_do_not_leak_contact_details(
    materialize: Materialize, mc_sandbox: MarketingCloudSandbox, tmp_path: Path
) -> None:
    result = materialize(PARTITION, selection="sfmc/raw/contacts")
    preview = str(mat_metadata(result, ["sfmc", "raw", "contacts"])["preview"])
    emails = ParquetLake(str(tmp_path / "lake")).read(["sfmc", "raw", "contacts"], PARTITION)["EmailAddress"]
    assert "***" in preview
    assert not any(e.strip() in preview for e in emails.head(5).to_list())


def test_rerun_replaces_the_partition(materialize: Materialize, tmp_path: Path) -> None:
    lake = ParquetLake(str(tmp_path / "lake"))
    assert materialize(PARTITION, selection="sfmc/raw/campaigns+").success
    first = lake.read(["sfmc", "clean", "campaigns"], PARTITION)
    assert materialize(PARTITION, selection="sfmc/raw/campaigns+").success
    second = lake.read(["sfmc", "clean", "campaigns"], PARTITION)
    assert second.height == first.height and second["engagement_id"].is_unique().all()


@pytest.mark.parametrize(
    ("kind", "rule"),
    [
        ("invalid_email", "email: str_matches"),
        ("missing_required", "email: not_nullable"),
        ("unmapped_value", "lifecycle_stage: isin"),
        ("unparseable_boolean", "_parse_errors: values_parse"),
    ],
)
def test_bad_data_fails_the_gate_and_nothing_downstream_runs(
    materialize_fresh: Materialize, fresh_mc_sandbox: MarketingCloudSandbox, tmp_path: Path, kind: str, rule: str
) -> None:
    fresh_mc_sandbox.inject_bad_rows("Contacts_DE", kind, dt.date(2026, 10, 3), n=2)
    result = materialize_fresh(PARTITION, selection="sfmc/raw/contacts+")
    assert not result.success
    evaluation = check_evaluations(result)[("sfmc/clean/contacts", "pandera_contract")]
    assert not evaluation.passed
    by_rule = evaluation.metadata["failures_by_rule"].value
    assert any(r.startswith(rule) for r in by_rule), by_rule
    assert evaluation.metadata["failing_rows"].value == 2
    assert "|" in evaluation.metadata["failure_sample"].value  # a markdown table of the failing values
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"sfmc/raw/contacts"}  # the clean partition was not written
    assert not ParquetLake(str(tmp_path / "lake")).exists(["sfmc", "clean", "contacts"], PARTITION)
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    message = failure.step_failure_data.error.message
    assert "Contacts_DE" in message and PARTITION in message and rule.split(":")[0] in message


def test_quarantine_tolerance_publishes_valid_rows(
    fresh_mc_sandbox: MarketingCloudSandbox, tmp_path: Path, instance: dg.DagsterInstance, config: ProjectConfig
) -> None:
    from sfmc_assets_tests.defs.conftest import make_materialize

    tolerant = config.model_copy(update={"data_extensions": tuple(
        d.model_copy(update={"quarantine_tolerance": 0.5}) if d.name == "contacts" else d
        for d in config.data_extensions
    )})
    bad = fresh_mc_sandbox.inject_bad_rows("Contacts_DE", "invalid_email", dt.date(2026, 10, 3), n=1)
    result = make_materialize(fresh_mc_sandbox, tmp_path, instance, tolerant)(PARTITION, selection="sfmc/raw/contacts+")
    assert result.success
    lake = ParquetLake(str(tmp_path / "lake"))
    clean = lake.read(["sfmc", "clean", "contacts"], PARTITION)
    quarantined = lake.read(["sfmc", "quarantine", "contacts"], PARTITION)
    assert quarantined["contact_key"].to_list() == bad
    assert bad[0] not in clean["contact_key"].to_list()
    md = mat_metadata(result, ["sfmc", "clean", "contacts"])
    assert md["rows_quarantined"] == 1
    reconcile = check_evaluations(result)[("sfmc/clean/contacts", "reconciles_with_raw")]
    assert reconcile.passed and reconcile.metadata["quarantined"].value == 1
    assert reconcile.metadata["raw_rows"].value == md["rows_in"]


def test_schema_drift_fails_the_extract_naming_the_column(
    materialize_fresh: Materialize, fresh_mc_sandbox: MarketingCloudSandbox
) -> None:
    fresh_mc_sandbox.alter_schema("Web_Activities", drop=["FormName"])
    result = materialize_fresh(PARTITION, selection="sfmc/raw/activities+")
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    message = failure.step_failure_data.error.message
    assert "column 'FormName' was removed" in message
    assert "Web_Activities" in message and PARTITION in message
    assert not result.get_asset_materialization_events()


def test_missing_sandbox_and_credentials_is_a_clear_error(mc_sandbox: MarketingCloudSandbox, tmp_path: Path,
                                                          instance: dg.DagsterInstance, config: ProjectConfig) -> None:
    from sfmc_assets.resources import MarketingCloudResource
    from sfmc_assets_tests.defs.conftest import definitions_for, resources_for

    defs = definitions_for(config)
    resources = {**resources_for(mc_sandbox, tmp_path),
                 "marketing_cloud": MarketingCloudResource(sandbox_discovery_file=str(tmp_path / "none.json"))}
    result = dg.materialize(
        list(defs.assets or []), partition_key=PARTITION, selection="sfmc/raw/contacts",
        resources=resources, instance=instance, raise_on_error=False,
    )
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert "No Marketing Cloud credentials are set (SFMC_CLIENT_ID" in failure.step_failure_data.error.message


def test_fourth_data_extension_is_configuration_only(
    fresh_mc_sandbox: MarketingCloudSandbox, tmp_path: Path, instance: dg.DagsterInstance, config: ProjectConfig
) -> None:
    """A second activities data extension (another business unit's naming) with no code change."""
    from sfmc_assets.lib.config import DataExtensionConfig
    from sfmc_assets_tests.defs.conftest import make_materialize

    fresh_mc_sandbox.create_data_extension(
        "Store_Visits", "Store Visits",
        fields=[
            {"name": "VisitId", "type": "Text", "length": 36, "isPrimaryKey": True, "isNullable": False},
            {"name": "Customer", "type": "Text", "length": 254, "isNullable": False},
            {"name": "What", "type": "Text", "length": 20, "isNullable": False},
            {"name": "VisitedAt", "type": "Date", "isNullable": False},
        ],
        rows=[
            {"VisitId": "V1", "Customer": "C1", "What": "Visit", "VisitedAt": dt.datetime(2026, 10, 3, 10, tzinfo=UTC)},
            {"VisitId": "V2", "Customer": "C2", "What": "Buy", "VisitedAt": dt.datetime(2026, 10, 3, 23, tzinfo=UTC)},
            {"VisitId": "V3", "Customer": "C2", "What": "Buy", "VisitedAt": dt.datetime(2026, 10, 4, 1, tzinfo=UTC)},
        ],
    )
    visits = DataExtensionConfig(
        name="store_visits", kind="activities", external_key="Store_Visits", primary_key=("VisitId",),
        delta_column="VisitedAt",
        columns={"activity_id": "VisitId", "contact_key": "Customer", "activity_kind": "What", "activity_at": "VisitedAt"},
        values={"activity_kind": {"Visit": "page_view", "Buy": "purchase"}},
    )
    four = config.model_copy(update={"data_extensions": (*config.data_extensions, visits)})
    result = make_materialize(fresh_mc_sandbox, tmp_path, instance, four)(PARTITION, selection="sfmc/raw/store_visits+")
    assert result.success
    clean = ParquetLake(str(tmp_path / "lake")).read(["sfmc", "clean", "store_visits"], PARTITION)
    assert sorted(clean["activity_kind"].to_list()) == ["page_view", "purchase"]
    assert clean.schema["activity_at"] == pl.Datetime("us", "UTC")


def test_the_lake_can_be_any_fsspec_location(mc_sandbox: MarketingCloudSandbox, tmp_path: Path,
                                            instance: dg.DagsterInstance, config: ProjectConfig) -> None:
    """Object storage in production; fsspec's in-memory filesystem stands in for it here."""
    from sfmc_assets.resources import LakeResource
    from sfmc_assets_tests.defs.conftest import definitions_for, resources_for

    base = f"memory://lake-{tmp_path.name}"
    resources = {**resources_for(mc_sandbox, tmp_path), "lake": LakeResource(base_uri=base)}
    result = dg.materialize(list(definitions_for(config).assets or []), partition_key=PARTITION,
                            selection="sfmc/raw/activities+", resources=resources, instance=instance)
    assert result.success
    lake = ParquetLake(base)
    clean = lake.read(["sfmc", "clean", "activities"], PARTITION)
    assert clean.height == lake.scan(["sfmc", "raw", "activities"], PARTITION).collect().height > 0
    assert not (tmp_path / "lake").exists()

"""Any data extension, through real Dagster materialisations against both sandboxes.

The configuration here is the bundled one (whose 4th data extension, `orders`, is generic) plus a 5th,
`preferences` (composite key, no date column, `sync: full`), added by YAML alone.
"""

import datetime as dt
import textwrap
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from sfmc_assets.lib.config import ProjectConfig, load_config
from sfmc_assets.lib.lake import ParquetLake
from sfmc_assets.lib.settings import config_path
from sfmc_assets.sandboxes.experience_platform import ExperiencePlatformSandbox
from sfmc_assets.sandboxes.marketing_cloud import MarketingCloudSandbox
from sfmc_assets_tests.defs.conftest import make_materialize
from sfmc_assets_tests.defs.test_raw_and_clean import check_evaluations, mat_metadata

PARTITION = "2026-10-03"
UTC = dt.timezone.utc
#: Full snapshots and key reconciliation only read recent days: the newest partition and the one before.
NEWEST = (dt.datetime.now(UTC).date() - dt.timedelta(days=1)).isoformat()
BEFORE = (dt.datetime.now(UTC).date() - dt.timedelta(days=2)).isoformat()

PREFERENCES = """
- name: preferences
  external_key: Channel_Preferences
  sync: full
  primary_key: [SubscriberKey, Channel]
  owners: ["team:marketing-data"]
  rules:
    channel: {isin: [Email, SMS, Push]}
    frequency: {isin: [Daily, Weekly, Monthly]}
"""


def config_with(tmp_path: Path, extra: str = PREFERENCES, **orders: object) -> ProjectConfig:
    """The bundled file plus `extra` data extensions (YAML), `orders` settings overridden: no code."""
    raw = yaml.safe_load(config_path().read_text())
    raw["data_extensions"] += yaml.safe_load(textwrap.dedent(extra))
    for de in raw["data_extensions"]:
        if de["name"] == "orders":
            de.update(orders)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_config(path)


@pytest.fixture
def run(fresh_mc_sandbox: MarketingCloudSandbox, aep_sandbox: ExperiencePlatformSandbox, tmp_path: Path,
        instance: dg.DagsterInstance):
    def _run(partition: str, selection: str | list[str], config: ProjectConfig | None = None) -> dg.ExecuteInProcessResult:
        materialize = make_materialize(fresh_mc_sandbox, tmp_path, instance, config or config_with(tmp_path),
                                       aep_sandbox)
        return materialize(partition, selection=selection)
    return _run


def lake(tmp_path: Path) -> ParquetLake:
    return ParquetLake(str(tmp_path / "lake"))


def test_a_generic_data_extension_is_ingested_gated_and_published(
    run, fresh_mc_sandbox: MarketingCloudSandbox, tmp_path: Path
) -> None:
    result = run(PARTITION, "sfmc/raw/orders*")
    assert result.success
    truth = fresh_mc_sandbox.ground_truth("Orders", dt.datetime(2026, 10, 3, tzinfo=UTC),
                                          dt.datetime(2026, 10, 4, tzinfo=UTC))
    clean = lake(tmp_path).read(["sfmc", "clean", "orders"], PARTITION)
    assert clean.height == truth.height > 0
    assert clean.columns[:10] == ["order_id", "subscriber_key", "order_total", "discount_rate", "is_gift",
                                  "currency", "status", "loyalty_points", "ship_date", "order_date"]
    assert clean.schema["order_total"] == pl.Decimal(12, 2) and clean.schema["discount_rate"] == pl.Decimal(5, 4)
    # Nullable Booleans, Decimals and Dates stay empty where Marketing Cloud left them empty: not quarantined.
    assert clean["is_gift"].null_count() == truth["IsGift"].null_count() > 0
    assert clean["ship_date"].null_count() == truth["Ship Date"].null_count() > 0
    checks = check_evaluations(result)
    assert checks[("sfmc/clean/orders", "pandera_contract")].passed
    assert checks[("aep/orders", "reconciles_with_clean")].passed
    schema = mat_metadata(result, ["sfmc", "clean", "orders"])["dagster/column_schema"]
    columns = {c.name: c for c in schema.columns}
    assert not columns["order_id"].constraints.nullable and columns["order_id"].constraints.unique
    assert columns["is_gift"].constraints.nullable and "Marketing Cloud `IsGift`, Boolean" in columns["is_gift"].description


def test_a_declared_rule_blocks_and_names_the_value(run, fresh_mc_sandbox: MarketingCloudSandbox) -> None:
    template = fresh_mc_sandbox.ground_truth("Orders").head(1).to_dicts()[0]
    fresh_mc_sandbox.upsert_rows("Orders", [template | {
        "OrderID": "ORD-LOST", "Status": "Lost", "OrderDate": dt.datetime(2026, 10, 3, 12, tzinfo=UTC)}])
    result = run(PARTITION, "sfmc/raw/orders*")
    contract = check_evaluations(result)[("sfmc/clean/orders", "pandera_contract")]
    assert not contract.passed
    assert contract.metadata["failures_by_rule"].value == {"status: isin(['Placed', 'Shipped', 'Delivered', "
                                                            "'Returned', 'Cancelled'])": 1}
    assert "aep/orders" not in {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def test_empty_opt_ins_pass_the_default_gate_and_are_published(
    run, fresh_mc_sandbox: MarketingCloudSandbox, tmp_path: Path, aep_sandbox: ExperiencePlatformSandbox
) -> None:
    day = dt.datetime(2026, 10, 3, tzinfo=UTC)
    truth = fresh_mc_sandbox.ground_truth("Contacts_DE", day, day + dt.timedelta(days=1))
    template = truth.head(1).to_dicts()[0]
    fresh_mc_sandbox.upsert_rows("Contacts_DE", [template | {"SubscriberKey": f"CUST-UNKNOWN-{i}", "OptIn": None,
                                                             "ModifiedDate": day + dt.timedelta(hours=i)}
                                                 for i in range(3)])
    result = run(PARTITION, "sfmc/raw/contacts*")
    checks = check_evaluations(result)
    assert checks[("sfmc/clean/contacts", "pandera_contract")].passed  # default tolerance: 0 %
    clean = lake(tmp_path).read(["sfmc", "clean", "contacts"], PARTITION)
    assert clean.height == truth.height + 3 and clean["opt_in"].null_count() >= 3
    publish = checks[("aep/contacts", "reconciles_with_clean")]
    assert publish.passed and publish.metadata["records_accepted"].value == clean.height


def test_a_full_snapshot_records_the_rows_deleted_since_the_previous_one(
    run, fresh_mc_sandbox: MarketingCloudSandbox, tmp_path: Path
) -> None:
    assert run(BEFORE, "sfmc/raw/preferences*").success
    first = lake(tmp_path).read(["sfmc", "clean", "preferences"], BEFORE)
    assert first.height == fresh_mc_sandbox.ground_truth("Channel_Preferences").height
    # Composite key: three channels per subscriber, none merged away, paged in key order.
    assert first.select("subscriber_key", "channel").is_unique().all()
    raw = lake(tmp_path).read(["sfmc", "raw", "preferences"], BEFORE)
    assert raw.select("SubscriberKey", "Channel").equals(raw.select("SubscriberKey", "Channel").sort(
        "SubscriberKey", "Channel"))
    removed = fresh_mc_sandbox.delete_rows("Channel_Preferences",
                                           "\"SubscriberKey\" = 'CUST-0000007' OR (\"SubscriberKey\" = "
                                           "'CUST-0000009' AND \"Channel\" = 'SMS')")
    assert removed == 4
    result = run(NEWEST, "sfmc/raw/preferences*")
    assert result.success
    deletes = lake(tmp_path).read(["sfmc", "deletes", "preferences"], NEWEST)
    assert deletes.select("subscriber_key", "channel").rows() == [
        ("CUST-0000007", "Email"), ("CUST-0000007", "Push"), ("CUST-0000007", "SMS"), ("CUST-0000009", "SMS")]
    assert deletes["last_seen_on"].to_list() == [dt.date.fromisoformat(BEFORE)] * 4
    assert mat_metadata(result, ["sfmc", "deletes", "preferences"])["dagster/partition_row_count"] == 4
    assert check_evaluations(result)[("sfmc/deletes/preferences", "deletes_below_half")].passed


def test_past_snapshots_are_kept_and_lost_ones_are_named(
    run, fresh_mc_sandbox: MarketingCloudSandbox, tmp_path: Path
) -> None:
    assert run(BEFORE, "sfmc/raw/preferences").success
    assert run(NEWEST, "sfmc/raw/preferences").success
    before = lake(tmp_path).read(["sfmc", "raw", "preferences"], BEFORE)
    fresh_mc_sandbox.delete_rows("Channel_Preferences", "TRUE")
    again = run(BEFORE, "sfmc/raw/preferences")  # a later snapshot exists: kept, not re-read
    assert again.success and lake(tmp_path).read(["sfmc", "raw", "preferences"], BEFORE).equals(before)
    assert "kept" in str(mat_metadata(again, ["sfmc", "raw", "preferences"])["snapshot"])
    lost = run("2026-10-05", "sfmc/raw/preferences")
    assert not lost.success
    (failure,) = [e for e in lost.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "Channel_Preferences" in message and "2026-10-05" in message and "no history" in message


def test_key_reconciliation_finds_rows_deleted_in_marketing_cloud(
    run, fresh_mc_sandbox: MarketingCloudSandbox, tmp_path: Path
) -> None:
    config = config_with(tmp_path, reconcile_keys="daily")
    assert run(PARTITION, ["sfmc/raw/orders", "sfmc/clean/orders"], config).success
    seen = lake(tmp_path).read(["sfmc", "clean", "orders"], PARTITION)["order_id"].sort()
    gone = seen.head(2).to_list()
    fresh_mc_sandbox.delete_rows("Orders", "\"OrderID\" IN (?, ?)", gone)
    result = run(NEWEST, "sfmc/deletes/orders", config)
    assert result.success
    deletes = lake(tmp_path).read(["sfmc", "deletes", "orders"], NEWEST)
    assert deletes["order_id"].to_list() == gone
    assert deletes["last_seen_on"].to_list() == [dt.date(2026, 10, 3)] * 2
    # Found once: the next reconciliation does not report them again.
    assert run(NEWEST, "sfmc/deletes/orders", config).success


def test_an_added_column_flows_with_add_columns_and_stops_a_fail_policy(
    run, fresh_mc_sandbox: MarketingCloudSandbox, tmp_path: Path
) -> None:
    fresh_mc_sandbox.alter_schema("Orders", add={"GiftMessage": "Text"})
    fresh_mc_sandbox.alter_schema("Contacts_DE", add={"Segment": "Text"})
    result = run(PARTITION, ["sfmc/raw/orders*", "sfmc/raw/contacts"])
    raw = lake(tmp_path).read(["sfmc", "raw", "orders"], PARTITION)
    clean = lake(tmp_path).read(["sfmc", "clean", "orders"], PARTITION)
    assert "GiftMessage" in raw.columns and "gift_message" in clean.columns
    schema = mat_metadata(result, ["sfmc", "clean", "orders"])["dagster/column_schema"]
    assert "gift_message" in {c.name for c in schema.columns}
    assert "'GiftMessage' (Text) was added" in str(mat_metadata(result, ["sfmc", "raw", "orders"])["schema_changes"])
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "Contacts_DE" in failure.step_failure_data.error.message
    assert "column 'Segment' (Text) was added (on_schema_change: fail)" in failure.step_failure_data.error.message


def test_ignore_reads_the_declared_columns_and_a_retyped_column_always_fails(
    run, fresh_mc_sandbox: MarketingCloudSandbox, tmp_path: Path
) -> None:
    fresh_mc_sandbox.alter_schema("Orders", add={"GiftMessage": "Text"})
    assert run(PARTITION, "sfmc/raw/orders", config_with(tmp_path, on_schema_change="ignore")).success
    assert "GiftMessage" not in lake(tmp_path).read(["sfmc", "raw", "orders"], PARTITION).columns
    fresh_mc_sandbox.alter_schema("Orders", retype={"Currency": "Number"})
    failed = run(PARTITION, "sfmc/raw/orders")
    (failure,) = [e for e in failed.all_events if e.is_step_failure]
    assert "column 'Currency' changed type from Text to Number" in failure.step_failure_data.error.message


def test_an_unknown_field_type_is_read_as_text_with_a_warning(
    run, fresh_mc_sandbox: MarketingCloudSandbox, tmp_path: Path
) -> None:
    fresh_mc_sandbox.create_data_extension(
        "Loyalty_Tiers", "Loyalty Tiers",
        [{"name": "SubscriberKey", "type": "Text", "length": 254, "isPrimaryKey": True},
         {"name": "Points", "type": "LongNumber"}, {"name": "Changed", "type": "Date", "isNullable": False}],
        rows=[{"SubscriberKey": "S1", "Points": "9007199254740993",
               "Changed": dt.datetime(2026, 10, 3, 8, tzinfo=UTC)}],
        delta="Changed",
    )
    config = config_with(tmp_path, extra=PREFERENCES + """
- name: loyalty_tiers
  external_key: Loyalty_Tiers
  delta_column: Changed
  owners: ["team:marketing-data"]
""")
    result = run(PARTITION, "sfmc/raw/loyalty_tiers*", config)
    assert result.success
    clean = lake(tmp_path).read(["sfmc", "clean", "loyalty_tiers"], PARTITION)
    assert clean.schema["points"] == pl.String and clean["points"].to_list() == ["9007199254740993"]
    changes = str(mat_metadata(result, ["sfmc", "raw", "loyalty_tiers"])["schema_changes"])
    assert "'Points' (LongNumber) has a type this reader does not know: read as text" in changes


def test_the_fifth_data_extension_is_configuration_only(tmp_path: Path) -> None:
    from sfmc_assets.definitions import build_definitions

    graph = build_definitions(config_with(tmp_path)).resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"sfmc/raw/orders", "sfmc/clean/orders", "aep/orders", "sfmc/raw/preferences",
            "sfmc/clean/preferences", "sfmc/deletes/preferences"} <= keys
    assert len(load_config().data_extensions) == 4


def test_empty_opt_ins_pass_every_day_at_zero_tolerance(
    run, fresh_mc_sandbox: MarketingCloudSandbox, tmp_path: Path
) -> None:
    """Every day of the sandbox, each with contacts whose consent is unknown: nothing blocked or
    quarantined, one Profile record per contact."""
    days = [dt.date(2026, 10, 1) + dt.timedelta(days=i) for i in range(7)]
    template = fresh_mc_sandbox.ground_truth("Contacts_DE").head(1).to_dicts()[0]
    fresh_mc_sandbox.upsert_rows("Contacts_DE", [
        template | {"SubscriberKey": f"CUST-UNKNOWN-{d:%d}", "OptIn": None,
                    "ModifiedDate": dt.datetime.combine(d, dt.time(9), tzinfo=UTC)} for d in days])
    for day in days:
        result = run(day.isoformat(), "sfmc/raw/contacts*")
        checks = check_evaluations(result)
        contract = checks[("sfmc/clean/contacts", "pandera_contract")]
        assert contract.passed and contract.metadata["failing_rows"].value == 0, day
        clean = lake(tmp_path).read(["sfmc", "clean", "contacts"], day.isoformat())
        assert clean["opt_in"].null_count() >= 1, day
        assert checks[("aep/contacts", "reconciles_with_clean")].metadata["records_accepted"].value == clean.height

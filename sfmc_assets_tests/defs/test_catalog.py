"""`sfmc/catalog`: the account's data extensions as metadata, materialised on demand against the sandbox."""

from pathlib import Path

import dagster as dg

from sfmc_assets.definitions import build_definitions
from sfmc_assets.defs.catalog.assets import CATALOG_KEY
from sfmc_assets.lib.config import load_config
from sfmc_assets.sandboxes.marketing_cloud import MarketingCloudSandbox
from sfmc_assets_tests.defs.conftest import resources_for


def _catalog(sandbox: MarketingCloudSandbox, tmp_path: Path, instance: dg.DagsterInstance,
             search: str | None = None) -> dict[str, object]:
    defs = build_definitions(load_config())
    run_config = {"ops": {"sfmc__catalog": {"config": {"search": search}}}} if search is not None else None
    result = dg.materialize(list(defs.assets or []), selection=[CATALOG_KEY], instance=instance,
                            resources=resources_for(sandbox, tmp_path), run_config=run_config)
    assert result.success
    (event,) = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_the_catalog_lists_every_data_extension_and_what_is_configured(
    fresh_mc_sandbox: MarketingCloudSandbox, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    fresh_mc_sandbox.create_data_extension("Reference_Codes", "Reference Codes", [
        {"name": "Code", "type": "Text", "length": 20, "isPrimaryKey": True},
        {"name": "Label|Text", "type": "Text", "length": 100}], rows=[{"Code": "A", "Label|Text": "x"}])
    meta = _catalog(fresh_mc_sandbox, tmp_path, instance)
    assert meta["data_extensions"] == 6 and meta["configured"] == 4 and meta["search"] == "(all)"
    rows = {line.split(" | ")[0].strip("| "): line for line in str(meta["catalog"]).splitlines()[2:]}
    assert set(rows) == {"Contacts_DE", "Campaign_Engagement", "Web_Activities", "Orders", "Channel_Preferences",
                         "Reference_Codes"}
    assert rows["Contacts_DE"].endswith("| 300 | yes | 12 | SubscriberKey | LastOrderDate, ModifiedDate | `contacts` |")
    assert rows["Reference_Codes"].endswith("| 1 | no | 2 | Code | (none: sync: full) | — |")
    entries = {e["key"]: e for e in meta["catalog_json"]}  # type: ignore[attr-defined]
    assert entries["Orders"]["configured_as"] == "orders" and entries["Orders"]["suggested_delta"] == "OrderDate"
    assert [f["name"] for f in entries["Reference_Codes"]["fields"]] == ["Code", "Label|Text"]
    assert entries["Channel_Preferences"]["primary_key"] == ["SubscriberKey", "Channel"]


def test_the_catalog_can_be_narrowed_by_a_search(
    mc_sandbox: MarketingCloudSandbox, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    meta = _catalog(mc_sandbox, tmp_path, instance, search="engagement")
    assert meta["data_extensions"] == 1 and meta["search"] == "engagement"
    assert [e["key"] for e in meta["catalog_json"]] == ["Campaign_Engagement"]  # type: ignore[attr-defined]


def test_the_catalog_is_on_demand_only() -> None:
    defs = build_definitions(load_config())
    node = defs.resolve_asset_graph().get(CATALOG_KEY)
    assert node.automation_condition is None and node.partitions_def is None
    jobs = [j for j in defs.get_repository_def().get_all_jobs() if not j.name.startswith("__")]
    assert all(CATALOG_KEY not in j.asset_layer.executable_asset_keys for j in jobs)

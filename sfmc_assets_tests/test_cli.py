"""`sfmc-assets discover` over HTTP against the Marketing Cloud sandbox: every command, option and error.

The command runs in-process (click's runner) with the environment a user has: no credentials, the
sandbox found through its discovery file under `SFMC_ASSETS_HOME`, or real-credential variables pointing
at the sandbox. The console script and `python -m sfmc_assets` are run as processes once each.
"""

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from sfmc_assets.cli import main
from sfmc_assets.lib.config import load_config
from sfmc_assets.lib.settings import config_path
from sfmc_assets.sandboxes.marketing_cloud import Fault, MarketingCloudSandbox
from sfmc_assets_tests.conftest import DATA_END, DATA_START

UTC = dt.timezone.utc
EXTRA = 30  # data extensions added to the sandbox's 5: 35 in all, two pages of the 25-per-page search
CREDENTIALS = ("SFMC_CLIENT_ID", "SFMC_CLIENT_SECRET", "SFMC_AUTH_BASE_URI", "SFMC_ACCOUNT_ID", "SFMC_ASSETS_CONFIG")
NO_DATES = [{"name": "Code", "type": "Text", "length": 20, "isPrimaryKey": True},
            {"name": "Label", "type": "Text", "length": 100, "isNullable": False},
            {"name": "Weight", "type": "Number"}]

Run = Callable[..., Result]


@pytest.fixture(scope="module")
def tenant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MarketingCloudSandbox]:
    """A tenant with more than 25 data extensions, one of them without any Date field."""
    sandbox = MarketingCloudSandbox(tmp_path_factory.mktemp("mc_cli"), start=DATA_START, end=DATA_END,
                                    rows={"Contacts_DE": 200, "Campaign_Engagement": 300, "Web_Activities": 300,
                                          "Orders": 200, "Channel_Preferences": 300})
    sandbox.start()
    for i in range(EXTRA - 1):
        sandbox.create_data_extension(f"Extra_{i:02d}", f"Extra list {i:02d}", [
            {"name": "ItemID", "type": "Text", "length": 36, "isPrimaryKey": True},
            {"name": "UpdatedAt", "type": "Date", "isNullable": False}],
            rows=[{"ItemID": f"I-{i}-{n}", "UpdatedAt": dt.datetime(2026, 10, 2, n, tzinfo=UTC)} for n in range(i % 4)])
    sandbox.create_data_extension("Reference_Codes", "Reference Codes", NO_DATES,
                                  rows=[{"Code": f"C{n}", "Label": f"Label {n}", "Weight": n} for n in range(7)],
                                  description="Lookup codes, no dates")
    yield sandbox
    sandbox.stop()


@pytest.fixture
def run(tenant: MarketingCloudSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Invoke `sfmc-assets` as a user would: the sandbox found through its discovery file (no credentials)."""
    home = tmp_path / "home"
    (home / "sandboxes").mkdir(parents=True)
    (home / "sandboxes" / "marketing_cloud.json").write_text(json.dumps(tenant.discovery()))
    for var in CREDENTIALS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SFMC_ASSETS_HOME", str(home))
    tenant.reset_stats()

    def _run(*args: str, env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(main, ["discover", *args], env=env, catch_exceptions=False)
    return _run


def test_lists_every_page_of_a_tenant_with_more_than_25_data_extensions(run: Run, tenant: MarketingCloudSandbox) -> None:
    result = run("--json")
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert len(listed) == 5 + EXTRA == len({d["key"] for d in listed})
    assert {d["key"] for d in listed} == {de.key for de in tenant.tenant.data_extensions.values()}
    assert tenant.stats()["search"] == 2  # page 1 (25) and page 2 (10): $pageSize is not honoured
    contacts = next(d for d in listed if d["key"] == "Contacts_DE")
    assert contacts["row_count"] == 200 and contacts["sendable"] is True and contacts["primary_key"] == ["SubscriberKey"]
    assert contacts["delta_candidates"] == ["LastOrderDate", "ModifiedDate"] and contacts["suggested_delta"] == "ModifiedDate"
    decimal = next(f for f in contacts["fields"] if f["name"] == "LifetimeValue")
    assert decimal == {"name": "LifetimeValue", "type": "Decimal", "length": 18, "scale": 2, "nullable": True,
                       "primary_key": False}


def test_a_data_extension_without_date_fields_has_no_delta_candidate(run: Run) -> None:
    result = run("Reference_Codes", "--json")
    assert result.exit_code == 0, result.output
    (codes,) = json.loads(result.output)
    assert codes["delta_candidates"] == [] and codes["suggested_delta"] is None
    assert codes["row_count"] == 7 and codes["description"] == "Lookup codes, no dates"
    table = run("Reference_Codes")
    assert "(none: sync: full)" in table.output and "Reference Codes" in table.output


def test_search_narrows_the_listing_and_pages_through_it(run: Run, tenant: MarketingCloudSandbox) -> None:
    result = run("--search", "extra list", "--json")
    assert result.exit_code == 0, result.output
    assert sorted(d["key"] for d in json.loads(result.output)) == [f"Extra_{i:02d}" for i in range(EXTRA - 1)]
    assert tenant.stats()["search"] == 2
    human = run("--search", "Orders")
    assert human.exit_code == 0 and "1 data extension(s) matching 'Orders'" in human.output
    assert "Ship Date" in human.output and "suggested" in human.output  # OrderDate: the suggested delta


def test_preview_prints_typed_rows_with_personal_columns_masked(run: Run, tenant: MarketingCloudSandbox) -> None:
    result = run("--preview", "Contacts_DE", "--rows", "3", "--json")
    assert result.exit_code == 0, result.output
    preview = json.loads(result.output)
    assert preview["count"] == 200 and len(preview["rows"]) == 3
    assert preview["masked"] == ["EmailAddress", "FirstName", "LastName", "MobilePhone"]
    assert preview["schema"]["ModifiedDate"] == "Datetime(time_unit='us', time_zone='UTC')"
    assert preview["schema"]["LifetimeValue"] == "Decimal(precision=18, scale=2)"
    assert preview["schema"]["OptIn"] == "Boolean" and preview["schema"]["TotalOrders"] == "Int64"
    truth = tenant.ground_truth("Contacts_DE").sort("SubscriberKey").head(3).to_dicts()
    for row, source in zip(preview["rows"], truth, strict=True):
        assert row["SubscriberKey"] == source["SubscriberKey"]
        assert row["EmailAddress"] == source["EmailAddress"][0] + "***"  # never the address itself
        assert row["ModifiedDate"] == str(source["ModifiedDate"].astimezone(UTC))
    human = run("--preview", "Contacts_DE", "--rows", "2")
    assert "first 2 of 200 row(s)" in human.output and "datetime[μs, UTC]" in human.output
    assert not any(t["EmailAddress"] in human.output for t in truth)


def test_preview_of_a_data_extension_without_dates_or_rows(run: Run, tenant: MarketingCloudSandbox) -> None:
    codes = json.loads(run("--preview", "Reference_Codes", "--rows", "50", "--json").output)
    assert [r["Code"] for r in codes["rows"]] == [f"C{n}" for n in range(7)] and codes["masked"] == []
    empty = json.loads(run("--preview", "Extra_00", "--json").output)
    assert empty["count"] == 0 and empty["rows"] == []


def test_write_config_appends_entries_that_load_and_leaves_the_rest_as_it_was(run: Run, tmp_path: Path) -> None:
    target = tmp_path / "config.yaml"
    original = config_path().read_text()
    target.write_text(original)
    result = run("--write-config", "Reference_Codes", "Extra_03", "--config", str(target))
    assert result.exit_code == 0, result.output
    written = target.read_text()
    head = original[:original.index("\n# Segment-ready tables")]
    assert written.startswith(head) and written.endswith(original[len(head):])  # every other byte kept
    config = load_config(target)
    codes, extra = config.data_extensions[-2:]
    assert (codes.name, codes.sync, codes.delta_column, codes.primary_key) == ("reference_codes", "full", None, ("Code",))
    assert [f.describe() for f in codes.fields or ()] == ["Text(20)", "Text(100)", "Number"]
    assert not codes.field("Label").is_nullable and codes.aep is None
    assert (extra.name, extra.sync, extra.delta_column) == ("extra_list_03", "incremental", "UpdatedAt")
    assert "sync: full                                # suggested: no Date field" in written
    assert "# aep:" in written and "_yourtenant.referenceCodes.label: label" in written  # commented out


def test_write_config_creates_a_missing_file_and_suggests_a_kind_in_comments(run: Run, tmp_path: Path) -> None:
    target = tmp_path / "new" / "mine.yaml"
    result = run("--write-config", "Campaign_Engagement", "--config", str(target),
                 "--dataset", "5ad0c0a1e0c7a5d000000002", "--xdm-tenant", "sfmcsandbox")
    assert result.exit_code == 0, result.output
    (campaigns,) = load_config(target).data_extensions
    assert campaigns.kind is None and campaigns.aep is not None  # the kind is only suggested
    assert campaigns.aep.xdm_class == "experience_event" and campaigns.aep.timestamp == "event_date"
    assert campaigns.aep.identities["SFMCSubscriberKey"].column == "subscriber_key"
    text = target.read_text()
    assert "    # kind: engagement\n" in text and "#   action: EventName\n" in text
    assert "Clicked: click" in text and "Opened: open" in text  # sampled values, mapped by name


def test_write_config_refuses_what_would_not_load_and_writes_nothing(run: Run, tmp_path: Path) -> None:
    target = tmp_path / "config.yaml"
    target.write_text(config_path().read_text())
    before = target.read_bytes()
    already = run("--write-config", "Contacts_DE", "--config", str(target))
    assert already.exit_code == 1 and "Contacts_DE is already configured as 'contacts'" in already.output
    unknown = run("--write-config", "Reference_Codes", "No_Such_DE", "--config", str(target))
    assert unknown.exit_code == 1 and "no data extension with external key 'No_Such_DE'" in unknown.output
    flow = tmp_path / "flow.yaml"
    flow.write_text('start_date: "2026-10-01"\ndata_extensions: [{name: x, external_key: X, sync: full}]\n')
    refused = run("--write-config", "Reference_Codes", "--config", str(flow))
    assert refused.exit_code == 1 and "must be a block list" in refused.output
    assert target.read_bytes() == before and "Reference_Codes" not in flow.read_text()


@pytest.mark.parametrize(("args", "message"), [
    (["--write-config"], "needs the external key(s)"),
    (["--write-config", "Orders"], "needs --config FILE or SFMC_ASSETS_CONFIG"),
    (["--write-config", "Orders", "--config", "x.yaml", "--dataset", "d1"], "--dataset needs --xdm-tenant"),
    (["--preview", "Orders", "--rows", "0"], "0 is not in the range 1<=x<=2500"),
])
def test_usage_errors(run: Run, args: list[str], message: str) -> None:
    result = run(*args)
    assert result.exit_code == 2 and message in result.output


def test_an_unknown_key_is_named(run: Run) -> None:
    for args in (["--preview", "No_Such_DE"], ["No_Such_DE"]):
        result = run(*args)
        assert result.exit_code == 1
        assert "no data extension with external key 'No_Such_DE' (customobjects search found 0 candidate(s)" \
            in result.output


def test_a_refused_search_says_to_narrow_it(run: Run, tenant: MarketingCloudSandbox) -> None:
    """Marketing Cloud does not document an empty `$search`; if a tenant answers 400, the error says what to do."""
    tenant.set_faults([Fault(route="search", kind="status", status=400)])
    try:
        result = run()
    finally:
        tenant.clear_faults()
    assert result.exit_code == 1 and "Listing the data extensions failed" in result.output
    assert "pass --search with part of the names you want" in result.output


def test_bad_credentials_are_named_without_the_secret(run: Run, tenant: MarketingCloudSandbox) -> None:
    env = {"SFMC_CLIENT_ID": tenant.client_id, "SFMC_CLIENT_SECRET": "wrong-secret-4711",
           "SFMC_AUTH_BASE_URI": tenant.url}
    result = run(env=env)
    assert result.exit_code == 1
    assert f"Marketing Cloud refused the credentials of client id '{tenant.client_id}'" in result.output
    assert "Client authentication failed" in result.output and "wrong-secret-4711" not in result.output


def test_a_wrong_base_uri_is_named(run: Run, tenant: MarketingCloudSandbox) -> None:
    env = {"SFMC_CLIENT_ID": tenant.client_id, "SFMC_CLIENT_SECRET": tenant.client_secret,
           "SFMC_AUTH_BASE_URI": tenant.url + "nowhere/"}
    result = run("--preview", "Orders", env=env)
    assert result.exit_code == 1
    assert "unexpected answer from the token endpoint: Resource not found: /nowhere/v2/token" in result.output
    assert tenant.client_secret not in result.output


def test_real_credentials_reach_the_same_tenant(run: Run, tenant: MarketingCloudSandbox) -> None:
    env = {"SFMC_CLIENT_ID": tenant.client_id, "SFMC_CLIENT_SECRET": tenant.client_secret,
           "SFMC_AUTH_BASE_URI": tenant.url, "SFMC_ACCOUNT_ID": tenant.account_id}
    result = run("Orders", "--json", env=env)
    assert result.exit_code == 0 and json.loads(result.output)[0]["key"] == "Orders"


def test_no_credentials_and_no_sandbox_says_what_to_do(run: Run, tmp_path: Path) -> None:
    result = run(env={"SFMC_ASSETS_HOME": str(tmp_path / "empty")})
    assert result.exit_code == 1
    assert "No Marketing Cloud credentials are set" in result.output and "make run" in result.output


def test_the_console_script_and_the_module_run(tenant: MarketingCloudSandbox, tmp_path: Path) -> None:
    (tmp_path / "sandboxes").mkdir()
    (tmp_path / "sandboxes" / "marketing_cloud.json").write_text(json.dumps(tenant.discovery()))
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIALS} | {"SFMC_ASSETS_HOME": str(tmp_path)}
    script = Path(sys.executable).parent / "sfmc-assets"
    listed = subprocess.run([str(script), "discover", "--search", "codes", "--json"], env=env,
                            capture_output=True, text=True, timeout=120, check=True)
    assert [d["key"] for d in json.loads(listed.stdout)] == ["Reference_Codes"]
    module = subprocess.run([sys.executable, "-m", "sfmc_assets", "discover", "--preview", "No_Such_DE"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert module.returncode == 1 and "no data extension with external key 'No_Such_DE'" in module.stderr

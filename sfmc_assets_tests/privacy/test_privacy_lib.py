"""The pieces of the personal-data features, each on its own: configuration, matching, the journal,
the warehouse erasure on both backends, and the Experience Platform sandbox's Privacy Service over HTTP."""

import datetime as dt
import hashlib
import hmac
import json
import logging
from pathlib import Path

import polars as pl
import pytest
import requests
from upath import UPath

from sfmc_assets.lib.config import ProjectConfig
from sfmc_assets.lib.experience_platform import ExperiencePlatformClient, ExperiencePlatformError
from sfmc_assets.lib.experience_platform import privacy as privacy_service
from sfmc_assets.lib.lake import ParquetLake
from sfmc_assets.lib.privacy import erasure, retention, warehouse_erasure
from sfmc_assets.lib.privacy.journal import ErasureJournal, request_id
from sfmc_assets.lib.privacy.keys import KEY_ENV, KeyedHasher, PrivacyKeyError, load_hasher
from sfmc_assets.lib.privacy.matching import Matcher
from sfmc_assets.lib.privacy.store import PrivacyStore
from sfmc_assets.lib.privacy.suppression import Suppression, rebuild
from sfmc_assets.lib.warehouse import open_warehouse
from sfmc_assets.sandboxes.experience_platform import ExperiencePlatformSandbox
from sfmc_assets_tests.postgres.test_warehouse import needs_pg, pg_url  # noqa: F401 - the fixture
from sfmc_assets_tests.privacy.world import variant

# -- configuration ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "message"), [
    ({"contacts": {"privacy": {"hash": {"total_orders": "sha256"}}}}, "are not text; only text is hashed"),
    ({"contacts": {"privacy": {"hash": {"nope": "sha256"}}}}, "privacy.hash names ['nope']"),
    ({"contacts": {"privacy": {"hash": {"email": "sha256"}, "hash_in_lake": ["email"]}}},
     "['email'] cannot be hashed in the lake"),
    ({"orders": {"privacy": {"hash": {"order_id": "sha256"}, "hash_in_lake": ["order_id"]}}},
     "['order_id'] cannot be hashed in the lake"),
    ({"contacts": {"privacy": {"hash_in_lake": ["phone"]}}}, "which privacy.hash does not hash"),
    ({"contacts": {"privacy": {"hash": {"email": "sha256"}}}}, "clear namespace(s) ['Email']"),
    ({"orders": {"privacy": {"keep_unmapped": False}}}, "drops the columns on_schema_change: add_columns"),
    ({"orders": {"privacy": {"contact_key": "Buyer"}}}, "privacy names column(s) ['Buyer']"),
    ({"contacts": {"privacy": {"retention_days": 1}}}, "must exceed lookback_days (1)"),
    ({"contacts": {"privacy": {"clean_retention_days": 400}}}, "would drop contacts the segment tables read"),
    ({"campaigns": {"privacy": {"clean_retention_days": 20}}}, "shorter than the segment window (30 days)"),
])
def test_privacy_mistakes_are_named_at_load_time(config: ProjectConfig, changes: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        variant(config, changes)
    assert message in str(info.value)


def test_the_bundled_configuration_names_whose_order_it_is(config: ProjectConfig) -> None:
    assert config.data_extension("orders").privacy.contact_key == "SubscriberKey"
    assert variant(config, {"campaigns": {"privacy": {"clean_retention_days": 31}}})  # window 30 + look-back 1


# -- keyed hashes, matching, journal -------------------------------------------------------------------


def test_matching_by_hash_alone_finds_values_whatever_their_case_and_spaces(tmp_path: Path) -> None:
    store = PrivacyStore(open_path(tmp_path))
    hasher = load_hasher(store, create=True)
    assert hasher is not None and load_hasher(store, create=False).fingerprint == hasher.fingerprint
    with_clear = Matcher(hasher, set())
    digests = with_clear.add_clear(["CUST-0000042", "Ana.Silva@Example.NET"])
    resumed = Matcher(hasher, set(digests))  # a resumed request knows only the hashes
    values = [" cust-0000042 ", "ana.silva@example.net", "CUST-00000420", None, "ana.silva@example.net.evil"]
    assert resumed.matching(values) == [" cust-0000042 ", "ana.silva@example.net"]
    assert with_clear.matching(values) == resumed.matching(values)


def test_the_request_id_is_the_same_for_the_same_keys(tmp_path: Path) -> None:
    store = PrivacyStore(open_path(tmp_path))
    hasher = load_hasher(store, create=True)
    assert hasher is not None
    first = ErasureJournal.open(store, hasher, ["K1", "K2"], "gdpr")
    again = ErasureJournal.open(store, hasher, [" k2", "K1", "K1"], "gdpr")
    assert first.id == again.id == request_id([hasher.digest("k1"), hasher.digest("k2")])
    assert again.doc["attempts"] == 2
    text = store.path("requests", f"{first.id}.json").read_text()
    assert "K1" not in text and "k1" not in text


def test_a_different_key_is_refused_rather_than_silently_forgetting_erasures(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    store = PrivacyStore(open_path(tmp_path))
    monkeypatch.setenv(KEY_ENV, "the-key-used-for-the-erasures")
    hasher = load_hasher(store, create=True)
    assert hasher is not None
    ErasureJournal.open(store, hasher, ["K1"], "gdpr")
    rebuild(store, hasher)
    assert Suppression.load(store) is not None
    monkeypatch.setenv(KEY_ENV, "a-different-key-set-by-mistake")
    with pytest.raises(PrivacyKeyError, match="erased contacts would no longer be recognised"):
        Suppression.load(store)


def test_identities_go_nine_to_a_user() -> None:
    ids = [("Email", f"a{i}@x.net") for i in range(10)] + [("SFMCSubscriberKey", "K1"), ("Email", "a0@x.net")]
    users = privacy_service.user_entries("sfmc-req-0", ids)
    assert [u["key"] for u in users] == ["sfmc-req-0", "sfmc-req-0-2"]
    assert [len(u["userIDs"]) for u in users] == [9, 2]  # 11 distinct identities
    types = {i["namespace"]: i["type"] for u in users for i in u["userIDs"]}
    assert types == {"Email": "standard", "SFMCSubscriberKey": "custom"}


def test_retention_cutoff_keeps_the_last_n_days(tmp_path: Path, config: ProjectConfig) -> None:
    lake = ParquetLake(str(tmp_path / "lake"))
    for day in ("2026-10-01", "2026-10-02", "2026-10-03"):
        lake.write(pl.DataFrame({"a": [1]}), ["sfmc", "raw", "contacts"], day)
    cfg = variant(config, {"contacts": {"privacy": {"retention_days": 2}}})
    expired = retention.expired(lake, cfg, dt.date(2026, 10, 4))
    assert [e.location.partition for e in expired] == ["2026-10-01"]  # 10-02 is exactly 2 days old: kept


def open_path(tmp_path: Path) -> UPath:
    """Where a lake's privacy store would be."""
    return UPath(str(tmp_path / "lake"))


# -- the warehouse, both backends ---------------------------------------------------------------------


@pytest.fixture(params=["duckdb", pytest.param("postgresql", marks=needs_pg)])
def warehouse_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(tmp_path / "w.duckdb") if request.param == "duckdb" else request.getfixturevalue("pg_url")


def test_the_warehouse_loses_exactly_the_contacts_rows(warehouse_location: str, tmp_path: Path) -> None:
    wh = open_warehouse(warehouse_location)
    days = [dt.date(2026, 10, 1), dt.date(2026, 10, 2)]
    for day in days:
        wh.replace_days("contact_features", pl.DataFrame({
            "as_of_date": [day] * 3, "contact_key": ["K1", "K2", "K3"], "email": ["a@x.net", "B@X.net", "c@x.net"]}),
            [day])
        wh.replace_days("segment_membership", pl.DataFrame({
            "as_of_date": [day] * 2, "segment": ["promotion", "promotion"], "contact_key": ["K2", "K3"]}), [day])
    store = PrivacyStore(open_path(tmp_path))
    hasher = load_hasher(store, create=True)
    assert hasher is not None
    matcher = Matcher(hasher, set())
    matcher.add_clear(["k2", "b@x.net"])
    erased = warehouse_erasure.erase(wh, matcher, compact=True)
    assert erased == {("contact_features", days[0]): 1, ("contact_features", days[1]): 1,
                      ("segment_membership", days[0]): 1, ("segment_membership", days[1]): 1}
    left = wh.query("SELECT contact_key FROM segments.contact_features ORDER BY 1")["contact_key"].to_list()
    assert left == ["K1", "K1", "K3", "K3"]
    assert list(warehouse_erasure.remaining(wh, matcher)) == []
    assert warehouse_erasure.erase(wh, matcher, compact=False) == {}  # idempotent


# -- Experience Platform's Privacy Service, in the sandbox, over HTTP ----------------------------------


@pytest.fixture
def aep(tmp_path: Path) -> ExperiencePlatformSandbox:
    with ExperiencePlatformSandbox(tmp_path / "aep", processing_delay_s=0.05) as sandbox:
        yield sandbox


def _post(client: ExperiencePlatformClient, body: dict) -> object:
    return client._call("POST", privacy_service.PRIVACY_JOBS, idempotent=False, json_body=body)


@pytest.mark.parametrize(("edit", "message"), [
    ({"companyContexts": [{"namespace": "imsOrgID", "value": "OTHER@AdobeOrg"}]}, "imsOrgID of this organization"),
    ({"users": []}, "between 1 and 1000 users"),
    ({"include": []}, "at least one product"),
    ({"regulation": "nope"}, "regulation must be one of"),
    ({"users": [{"key": "u", "action": ["delete"], "userIDs": [{"namespace": "Email", "value": "a@x.net",
                                                                "type": "weird"}]}]}, "a type in"),
    ({"users": [{"key": "u", "action": ["delete"],
                 "userIDs": [{"namespace": "Email", "value": f"{i}@x.net", "type": "standard"} for i in range(10)]}]},
     "between 1 and 9 identities"),
])
def test_the_privacy_service_refuses_malformed_jobs(aep: ExperiencePlatformSandbox, edit: dict, message: str) -> None:
    body = {"companyContexts": [{"namespace": "imsOrgID", "value": aep.org_id}],
            "users": privacy_service.user_entries("u", [("Email", "a@x.net")]),
            "include": list(privacy_service.PRODUCTS), "regulation": "gdpr", **edit}
    with ExperiencePlatformClient.from_discovery(aep.discovery()) as client, \
            pytest.raises(ExperiencePlatformError) as info:
        _post(client, body)
    assert info.value.status == 400 and message in str(info.value)


def test_access_jobs_read_delete_jobs_delete_and_jobs_are_listed(aep: ExperiencePlatformSandbox) -> None:
    with ExperiencePlatformClient.from_discovery(aep.discovery()) as client:
        for action in ("access", "delete"):
            users = [{**u, "action": [action]} for u in privacy_service.user_entries(f"u-{action}", [("Email", "a@x.net")])]
            _post(client, {"companyContexts": [{"namespace": "imsOrgID", "value": aep.org_id}], "users": users,
                           "include": ["aepDataLake"], "regulation": "gdpr"})
        found = privacy_service.find_jobs(client, "gdpr", {"u-access", "u-delete"})
        assert {j.user_key for j in found} == {"u-access", "u-delete"}
        assert privacy_service.find_jobs(client, "ccpa", {"u-access"}) == []
        with pytest.raises(ExperiencePlatformError) as info:
            client._call("GET", privacy_service.PRIVACY_JOBS, idempotent=True)
        assert info.value.status == 400  # the regulation is required when listing
    url = f"{aep.url}/data/core/privacy/jobs/{found[0].job_id}"
    assert requests.get(url, timeout=5).status_code == 403  # behind the gateway like every Platform route
    assert json.loads((aep.state_dir / "privacy_jobs.json").read_text())  # persisted with the catalog


def test_state_other_code_derives_in_the_lake_is_erased_too(tmp_path: Path, config: ProjectConfig) -> None:
    """A file outside the data extensions' layers (e.g. the segment tables' current contacts) with a
    `contact_key` or `email` column loses the contact's rows as well."""
    lake = ParquetLake(str(tmp_path / "lake"))
    state = pl.DataFrame({"contact_key": ["K1", "K2", "K3"], "email": ["a@x.net", "b@x.net", "K2@x.net"],
                          "stage": ["new", "loyal", "new"]})
    lake.write(state, ["segments", "current_contacts"], "2026-10-07")
    targets = erasure.Targets(config, lake, None, None, logging.getLogger(__name__))
    summary = erasure.erase(["k2"], targets).journal.summary()
    assert summary["status"] == "done"
    assert summary["rows_erased"] == {"lake:segments/current_contacts": 1}
    assert summary["experience_platform"]["status"] == "skipped"
    left = lake.read(["segments", "current_contacts"], "2026-10-07")
    assert left["contact_key"].to_list() == ["K1", "K3"]  # K3's e-mail merely starts with the key: kept


@pytest.mark.parametrize("secret", [b"s" * 16, b"k" * 64, b"a much longer secret than one SHA-256 block of 64 bytes" * 2])
def test_the_keyed_hash_is_hmac_sha256_of_the_normalised_value(secret: bytes) -> None:
    hasher = KeyedHasher(secret)
    assert hasher.digest("  CUST-0000042 ") == hmac.new(secret, b"cust-0000042", hashlib.sha256).hexdigest()
    assert hasher.matching(["CUST-0000042", " cust-0000042", "CUST-00000420", None],
                           {hasher.digest("cust-0000042")}) == ["CUST-0000042", " cust-0000042"]

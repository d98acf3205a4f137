"""Hashing and minimisation: what leaves for Experience Platform, and what is stored at all.

The hashed identity published is checked against an independent SHA-256 (hashlib) of the value as
Marketing Cloud holds it, trimmed and lower-cased: Adobe's rule for `Email_LC_SHA256`.
"""

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterator

import dagster as dg
import polars as pl
import pytest

from sfmc_assets.lib.config import ProjectConfig
from sfmc_assets.lib.experience_platform import ExperiencePlatformClient
from sfmc_assets.lib.extract import fields_from_metadata
from sfmc_assets.lib.personal import hash_columns
from sfmc_assets.lib.privacy import erasure
from sfmc_assets.lib.warehouse import Warehouse
from sfmc_assets_tests.privacy.world import World, make_world, scan_experience_platform, scan_lake, variant

DAY = "2026-10-03"
ROWS = {"Contacts_DE": 340, "Campaign_Engagement": 50, "Web_Activities": 50, "Orders": 300}
HASHED = {
    "contacts": {
        "privacy": {"hash": {"email": "sha256", "phone": "sha256"}, "hash_in_lake": ["phone"]},
        "aep": {"fields": {"personalEmail.address": None},
                "identities": {"Email": None, "Email_LC_SHA256": {"column": "email", "primary": True}}},
    },
    "orders": {  # minimisation: the gift flag and loyalty points are no longer mapped: not asked for, not stored
        "on_schema_change": "fail",
        "privacy": {"keep_unmapped": False},
        "aep": {"fields": {"_sfmcsandbox.order.isGift": None, "_sfmcsandbox.order.loyaltyPoints": None}},
    },
}


def sha256(value: str) -> str:
    return hashlib.sha256(value.strip().lower().encode()).hexdigest()


def test_hash_columns_follow_adobes_rule() -> None:
    values = ["  Ana.Silva3@EXAMPLE.net ", "ana.silva3@example.net", "ÉLODIE@exemple.fr", "", "   ", None]
    out = hash_columns(pl.DataFrame({"email": values, "n": range(6)}), ["email"])["email"].to_list()
    assert out[0] == out[1] == sha256("ana.silva3@example.net")
    assert out[2] == hashlib.sha256("élodie@exemple.fr".encode()).hexdigest()  # lower-cased as Unicode
    assert out[3:] == [None, None, None]  # an empty value is no identity: not the hash of ""


@pytest.fixture(scope="module")
def hashed(tmp_path_factory: pytest.TempPathFactory, config: ProjectConfig) -> Iterator[World]:
    world = make_world(tmp_path_factory.mktemp("hashing"), variant(config, HASHED), ROWS)
    keys = [["sfmc", layer, de] for layer in ("raw", "clean") for de in ("contacts", "orders")]
    run = world.materialize(DAY, DAY, dg.AssetSelection.assets(*keys, ["aep", "contacts"], ["aep", "orders"]))
    assert run.success, [e.message for e in run.all_events if e.is_failure]
    yield world
    world.mc.stop()
    world.aep.stop()


def _day(world: World, key: str) -> pl.DataFrame:
    """What Marketing Cloud holds for the day (by the data extension's delta column)."""
    start = dt.datetime.fromisoformat(DAY).replace(tzinfo=dt.timezone.utc)
    return world.mc.ground_truth(key, start, start + dt.timedelta(days=1))


def test_published_identities_are_the_sha256_of_the_normalised_email(hashed: World) -> None:
    truth = _day(hashed, "Contacts_DE")
    expected = {r["SubscriberKey"]: sha256(r["EmailAddress"]) for r in truth.iter_rows(named=True)}
    assert any(r["EmailAddress"] != r["EmailAddress"].strip().lower() for r in truth.iter_rows(named=True))
    records = hashed.aep.live_records(hashed.aep.discovery()["datasets"]["contacts"])
    published = {r["identityMap"]["SFMCSubscriberKey"][0]["id"]: r["identityMap"]["Email_LC_SHA256"][0]
                 for r in records}
    assert {k: v["id"] for k, v in published.items()} == expected
    assert all(v["primary"] for v in published.values())
    clear = [e.strip() for e in truth["EmailAddress"]]
    assert scan_experience_platform(hashed.aep, clear) == {}  # no clear address went out
    assert "personalEmail" not in json.dumps(records)


def test_a_column_hashed_before_the_lake_is_never_stored_in_clear(hashed: World) -> None:
    truth = _day(hashed, "Contacts_DE").filter(pl.col("MobilePhone").is_not_null())
    assert truth.height
    raw = hashed.lake.read(["sfmc", "raw", "contacts"], DAY)
    clean = hashed.lake.read(["sfmc", "clean", "contacts"], DAY)
    expected = {r["SubscriberKey"]: sha256(r["MobilePhone"]) for r in truth.iter_rows(named=True)}
    assert dict(raw.filter(pl.col("MobilePhone").is_not_null()).select("SubscriberKey", "MobilePhone").iter_rows()) \
        == expected
    assert dict(clean.filter(pl.col("phone").is_not_null()).select("contact_key", "phone").iter_rows()) == expected
    assert scan_lake(hashed.home / "lake", list(truth["MobilePhone"])) == {}
    fields = fields_from_metadata(hashed.lake.file_metadata(["sfmc", "raw", "contacts"], DAY))
    assert fields is not None
    assert next(f for f in fields if f.name == "MobilePhone").describe() == "Text(64)"  # what it holds now


def test_unmapped_columns_are_dropped_at_raw(hashed: World) -> None:
    raw = hashed.lake.read(["sfmc", "raw", "orders"], DAY)
    clean = hashed.lake.read(["sfmc", "clean", "orders"], DAY)
    assert "IsGift" not in raw.columns and "LoyaltyPoints" not in raw.columns
    assert "is_gift" not in clean.columns and "loyalty_points" not in clean.columns
    assert {"OrderID", "SubscriberKey", "OrderTotal", "Ship Date"} <= set(raw.columns)
    fields = fields_from_metadata(hashed.lake.file_metadata(["sfmc", "raw", "orders"], DAY))
    assert fields is not None and {f.name for f in fields} == set(raw.columns) - {"_parse_errors"}
    assert raw.height == _day(hashed, "Orders").height


def test_erasing_a_contact_published_hashed_deletes_it_by_its_hashed_identity(hashed: World) -> None:
    row = _day(hashed, "Contacts_DE").sort("SubscriberKey").row(0, named=True)
    targets = erasure.Targets(hashed.config, hashed.lake, Warehouse(hashed.warehouse_file),
                              lambda: ExperiencePlatformClient.from_discovery(hashed.aep.discovery()),
                              logging.getLogger(__name__))
    result = erasure.erase([row["SubscriberKey"]], targets, wait_s=30)
    assert result.journal.summary()["experience_platform"]["status"] == "complete"
    (job,) = [j for j in hashed.privacy_jobs() if j["action"] == "delete"]
    ids = {(i["namespace"], i["value"], i["type"]) for i in job["userIds"]}
    assert ids == {("Email_LC_SHA256", sha256(row["EmailAddress"]), "standard"),
                   ("SFMCSubscriberKey", row["SubscriberKey"], "custom")}
    assert scan_experience_platform(hashed.aep, [row["SubscriberKey"], sha256(row["EmailAddress"])]) == {}

"""The Marketing Cloud sandbox behaves like Marketing Cloud for everything the client calls.

Everything goes over real HTTP with plain `requests` (not the project's client): these tests pin the
sandbox's wire formats (token, rowset paging, filters, metadata, errors), its fault knobs and
its data, so that client tests against it mean something.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import requests

from sfmc_assets.lib.http import encode_query
from sfmc_assets.sandboxes.marketing_cloud import Fault, MarketingCloudSandbox

UTC = dt.timezone.utc
START, END = dt.date(2026, 10, 1), dt.date(2026, 10, 8)  # UTC days, half-open
DOC = "https://developer.salesforce.com/docs/atlas.en-us.mc-apis.meta/mc-apis/error-handling.htm"
NOT_AUTHORIZED = {"documentation": DOC, "errorcode": 0, "message": "Not Authorized"}
US_DATE = re.compile(r"^(1[0-2]|[1-9])/([1-9]|[12]\d|3[01])/\d{4} (1[0-2]|[1-9]):[0-5]\d:[0-5]\d [AP]M$")
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SMALL = {"Contacts_DE": 300, "Campaign_Engagement": 1500, "Web_Activities": 1500}
KEYS = ("Contacts_DE", "Campaign_Engagement", "Web_Activities")
PKS = {"Contacts_DE": "SubscriberKey", "Campaign_Engagement": "EngagementID", "Web_Activities": "ActivityID"}


class Api:
    """A bearer-authenticated session against one sandbox."""

    def __init__(self, sb: MarketingCloudSandbox) -> None:
        self.sb = sb
        self.http = requests.Session()
        self.token = new_token(sb)

    def get(self, path: str, params: dict[str, Any] | None = None, **kw: Any) -> requests.Response:
        """GET with the query encoded as Marketing Cloud's clients do (`%20`; `params=` would send `+`)."""
        headers = {"Authorization": f"Bearer {self.token}"}
        kw.setdefault("timeout", 30)
        query = ("?" + encode_query(params, safe="$,'")) if params else ""
        return self.http.get(self.sb.url + path + query, headers=headers, **kw)

    def rowset(self, key: str, **params: Any) -> requests.Response:
        return self.get(f"data/v1/customobjectdata/key/{key}/rowset", params)

    def next_page(self, body: dict[str, Any], page: int | None = None) -> requests.Response:
        n = page if page is not None else body["page"] + 1
        return self.get(f"data/v1/customobjectdata/token/{body['requestToken']}/rowset", {"$page": n})

    def read_all(self, key: str, **params: Any) -> list[dict[str, Any]]:
        """Every row, following `links.next` (relative to `/data`) as a client must."""
        body = self.rowset(key, **params).json()
        items = list(body.get("items", []))
        while "next" in body["links"]:
            body = self.get("data" + body["links"]["next"]).json()
            items += body.get("items", [])
        return items


def new_token(sb: MarketingCloudSandbox, **extra: Any) -> str:
    resp = requests.post(sb.url + "v2/token", json={"grant_type": "client_credentials", "client_id": sb.client_id,
                                                     "client_secret": sb.client_secret, **extra}, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()["access_token"]


def flat(item: dict[str, Any]) -> dict[str, str]:
    return {**item["keys"], **item["values"]}


def server_time_to_utc(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%m/%d/%Y %I:%M:%S %p").replace(tzinfo=UTC) + dt.timedelta(hours=6)


def typed(value: str, sfmc_type: str) -> Any:
    """An API string as the typed value `ground_truth` holds."""
    if value == "":
        return None
    return {"Date": server_time_to_utc, "Number": int, "Decimal": decimal.Decimal,
            "Boolean": lambda v: {"True": True, "False": False}[v]}.get(sfmc_type, str)(value)


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MarketingCloudSandbox]:
    """The read-only tenant with default row counts (tests that write use `fresh`)."""
    with MarketingCloudSandbox(tmp_path_factory.mktemp("mc_ro"), start=START, end=END) as sandbox:
        yield sandbox


@pytest.fixture
def api(sb: MarketingCloudSandbox) -> Iterator[Api]:
    sb.clear_faults()
    sb.reset_stats()
    yield Api(sb)
    sb.clear_faults()


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[MarketingCloudSandbox]:
    with MarketingCloudSandbox(tmp_path / "mc", start=START, end=END, rows=SMALL) as sandbox:
        yield sandbox


# -- token --------------------------------------------------------------------------------------------


def test_token_success_body(sb: MarketingCloudSandbox) -> None:
    for extra in ({}, {"account_id": sb.account_id}, {"account_id": int(sb.account_id), "scope": "data_extensions_read"}):
        resp = requests.post(sb.url + "v2/token", json={"grant_type": "client_credentials", "client_id": sb.client_id,
                                                         "client_secret": sb.client_secret, **extra}, timeout=10)
        body = resp.json()
        assert resp.status_code == 200
        assert set(body) == {"access_token", "token_type", "expires_in", "scope", "soap_instance_url",
                             "rest_instance_url"}
        assert body["token_type"] == "Bearer" and body["expires_in"] == 1079
        assert body["rest_instance_url"] == body["soap_instance_url"] == sb.url and sb.url.endswith("/")
        assert len(body["access_token"]) > 100
        if "scope" in extra:
            assert body["scope"] == "data_extensions_read"
    assert new_token(sb) != new_token(sb)


@pytest.mark.parametrize(
    ("change", "status", "body"),
    [
        ({"client_id": "nobody"}, 401, {"error": "invalid_client", "error_description": "Invalid client ID. Use the "
                                        "client ID in Marketing Cloud Installed Packages.",
                                        "error_uri": "https://developer.salesforce.com/docs"}),
        ({"client_secret": "wrong"}, 401, {"error": "invalid_client", "error_description": "Client authentication "
                                           "failed. Make sure that the client ID and client secret are valid and "
                                           "that the package is installed and enabled.",
                                           "error_uri": "https://developer.salesforce.com/docs"}),
    ],
)
def test_bad_credentials_get_the_exact_invalid_client_bodies(sb: MarketingCloudSandbox, change: dict, status: int,
                                                               body: dict) -> None:
    payload = {"grant_type": "client_credentials", "client_id": sb.client_id, "client_secret": sb.client_secret}
    resp = requests.post(sb.url + "v2/token", json=payload | change, timeout=10)
    assert resp.status_code == status and resp.json() == body


def test_other_token_refusals(sb: MarketingCloudSandbox) -> None:
    payload = {"grant_type": "client_credentials", "client_id": sb.client_id, "client_secret": sb.client_secret}
    unknown_account = requests.post(sb.url + "v2/token", json=payload | {"account_id": "999"}, timeout=10)
    assert unknown_account.status_code == 401 and "not accessible" in unknown_account.json()["error_description"]
    grant = requests.post(sb.url + "v2/token", json=payload | {"grant_type": "password"}, timeout=10)
    assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"
    form = requests.post(sb.url + "v2/token", data=payload, timeout=10)  # form encoding: refused (UNCONFIRMED)
    assert form.status_code == 400


def test_tokens_really_expire_while_expires_in_stays_1079(tmp_path: Path) -> None:
    with MarketingCloudSandbox(tmp_path, start=START, end=END, rows=SMALL, token_ttl_seconds=0.6) as sb:
        api = Api(sb)
        first = api.rowset("Contacts_DE", **{"$pageSize": 10})
        assert first.status_code == 200
        time.sleep(0.8)
        expired = api.next_page(first.json())  # mid-read
        assert expired.status_code == 401 and expired.json() == NOT_AUTHORIZED
        api.token = new_token(sb)
        assert api.next_page(first.json()).status_code == 200  # the request token outlives the access token


def test_rest_auth_failures(api: Api) -> None:
    url = api.sb.url + "data/v1/customobjectdata/key/Contacts_DE/rowset"
    assert requests.get(url, timeout=10).json() == NOT_AUTHORIZED
    for header in ("Bearer not-a-token", f"Basic {api.token}", api.token):
        resp = requests.get(url, headers={"Authorization": header}, timeout=10)
        assert resp.status_code == 401 and resp.json() == NOT_AUTHORIZED
    in_url = requests.get(url, params={"access_token": api.token}, timeout=10)
    assert in_url.status_code == 401 and in_url.json()["errorcode"] == 40004
    assert requests.get(api.sb.url + "data/v1/customobjects", params={"$search": "x"}, timeout=10).status_code == 401


# -- rowset envelope and values -----------------------------------------------------------------------


def test_envelope_and_paging_links(api: Api) -> None:
    resp = api.rowset("Campaign_Engagement", **{"$pageSize": 1000})
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()
    token = body["requestToken"]
    assert GUID.match(token)
    assert list(body) == ["links", "requestToken", "tokenExpireDateUtc", "customObjectId", "customObjectKey",
                          "pageSize", "page", "count", "top", "items"]
    assert body["links"] == {"self": f"/v1/customobjectdata/token/{token}/rowset?$page=1",
                             "next": f"/v1/customobjectdata/token/{token}/rowset?$page=2"}
    assert (body["pageSize"], body["page"], body["count"], body["top"]) == (1000, 1, 20_000, 0)
    assert len(body["items"]) == 1000
    expiry = dt.datetime.fromisoformat(body["tokenExpireDateUtc"])  # naive UTC, 3 fractional digits, no Z
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}$", body["tokenExpireDateUtc"])
    assert dt.timedelta(minutes=5) < expiry - dt.datetime.now(UTC).replace(tzinfo=None) < dt.timedelta(hours=2)
    assert GUID.match(body["customObjectId"]) and body["customObjectKey"] == "Campaign_Engagement"
    assert api.rowset("Campaign_Engagement").json()["customObjectId"] == body["customObjectId"]  # stable
    last = api.next_page(body, 20).json()
    assert len(last["items"]) == 1000 and "next" not in last["links"] and last["count"] == 20_000
    beyond = api.next_page(body, 21).json()
    assert "items" not in beyond and beyond["count"] == 20_000 and "next" not in beyond["links"]
    # links.next is relative to /data: the client prefixes rest_instance_url + "data"
    assert api.get("data" + body["links"]["next"]).json()["page"] == 2


def test_empty_result_has_no_items_key(api: Api) -> None:
    body = api.rowset("Contacts_DE", **{"$filter": "SubscriberKey eq 'nobody'"}).json()
    assert body["count"] == 0 and "items" not in body and "next" not in body["links"]


def test_page_size_default_cap_and_case_insensitive_names(api: Api) -> None:
    assert api.rowset("Campaign_Engagement").json()["pageSize"] == 2500
    capped = api.rowset("Campaign_Engagement", **{"$pageSize": 10_000}).json()
    assert capped["pageSize"] == 2500 and len(capped["items"]) == 2500
    lower = api.rowset("Campaign_Engagement", **{"$pagesize": 7, "$PAGE": 3}).json()
    assert (lower["pageSize"], lower["page"], len(lower["items"])) == (7, 3, 7)
    assert api.rowset("Campaign_Engagement", **{"$pageSize": "lots"}).status_code == 400


def test_items_split_keys_values_lower_case_and_all_strings(api: Api) -> None:
    items = api.rowset("Contacts_DE").json()["items"]
    assert len(items) == 2000
    names = {"emailaddress", "firstname", "lastname", "customerstage", "optin", "totalorders", "lifetimevalue",
             "lastorderdate", "locale", "mobilephone", "modifieddate"}
    for item in items:
        assert list(item) == ["keys", "values"] and list(item["keys"]) == ["subscriberkey"]
        assert set(item["values"]) == names
        assert all(isinstance(v, str) for v in flat(item).values())
        v = item["values"]
        assert v["optin"] in ("True", "False", "")  # a nullable Boolean: "" is NULL (consent unknown)
        assert US_DATE.match(v["modifieddate"])
        assert v["lastorderdate"] == "" or US_DATE.match(v["lastorderdate"])
        assert v["totalorders"] == "" or v["totalorders"].isdigit()
        assert v["lifetimevalue"] == "" or re.match(r"^\d+\.\d\d$", v["lifetimevalue"])
    assert any(i["values"]["firstname"] == "" for i in items)  # NULL is served as ""
    assert 0 < sum(i["values"]["optin"] == "" for i in items) < len(items) * 0.05  # ~2% consent unknown


def test_served_rows_equal_ground_truth(api: Api) -> None:
    """Every value of every data extension, parsed back, equals the store (dates UTC-6 → UTC)."""
    for key in KEYS:
        types = {f["name"]: f["type"] for f in fields_of(api, key)}
        truth = {r[next(iter(types))]: r for r in api.sb.ground_truth(key).to_dicts()}
        served = api.read_all(key, **{"$orderBy": f"{next(iter(types))} desc"})
        assert len(served) == len(truth)
        for item in served:
            row = flat(item)
            got = {name: typed(row[name.lower()], t) for name, t in types.items()}
            assert got == truth[got[next(iter(types))]]


def test_dates_are_served_in_fixed_utc_minus_6(fresh: MarketingCloudSandbox) -> None:
    rows = [{"EngagementID": f"tz-{i}", "SubscriberKey": "CUST-0000001", "CampaignID": "CMP-001",
             "CampaignName": "Autumn Sale", "Channel": "Email", "EventName": "Sent", "EventDate": when}
            for i, when in enumerate([dt.datetime(2024, 6, 23, 6, tzinfo=UTC),          # midnight server time
                                      dt.datetime(2026, 7, 1, 0, 0, tzinfo=UTC),         # summer: still -6
                                      dt.datetime(2026, 1, 15, 19, 5, 9, tzinfo=UTC)])]
    fresh.upsert_rows("Campaign_Engagement", rows)
    api = Api(fresh)
    items = api.rowset("Campaign_Engagement", **{"$filter": "EngagementID gte 'tz-' and EngagementID lt 'tz.'",
                                                  "$orderBy": "EngagementID"}).json()["items"]
    assert [i["values"]["eventdate"] for i in items] == ["6/23/2024 12:00:00 AM", "6/30/2026 6:00:00 PM",
                                                         "1/15/2026 1:05:09 PM"]


def test_token_route_pins_the_query(api: Api) -> None:
    params = {"$filter": "EventName eq 'Clicked'", "$orderBy": "EventDate desc, EngagementID", "$pageSize": 50,
              "$fields": "EngagementID,EventName,EventDate"}
    first = api.rowset("Campaign_Engagement", **params).json()
    second = api.get(f"data/v1/customobjectdata/token/{first['requestToken']}/rowset",
                     {"$page": 2, "$pageSize": 5, "$filter": "EventName eq 'Sent'"}).json()  # ignored
    assert (second["pageSize"], second["count"], len(second["items"])) == (50, first["count"], 50)
    both = first["items"] + second["items"]
    assert all(i["values"] == {"eventname": "Clicked", "eventdate": i["values"]["eventdate"]} for i in both)
    stamps = [server_time_to_utc(i["values"]["eventdate"]) for i in both]
    assert stamps == sorted(stamps, reverse=True)
    assert len({i["keys"]["engagementid"] for i in both}) == 100
    unknown = api.get("data/v1/customobjectdata/token/00000000-0000-0000-0000-000000000000/rowset", {"$page": 2})
    assert unknown.status_code == 404 and unknown.json()["errorcode"] == 30003  # shape UNCONFIRMED


def test_pages_rerun_against_current_data(fresh: MarketingCloudSandbox) -> None:
    """No snapshot: a row inserted before the cursor shifts later pages (the hazard clients must handle)."""
    api = Api(fresh)
    first = api.rowset("Contacts_DE", **{"$orderBy": "SubscriberKey", "$pageSize": 10}).json()
    fresh.upsert_rows("Contacts_DE", [{**fresh.ground_truth("Contacts_DE").row(0, named=True),
                                       "SubscriberKey": "AAA-first"}])
    second = api.next_page(first).json()
    assert second["count"] == first["count"] + 1
    assert second["items"][0] == first["items"][-1]  # the last row of page 1 is served again
    fresh.delete_rows("Contacts_DE", "\"SubscriberKey\" = ?", ["AAA-first"])
    assert api.next_page(first, 1).json()["items"] == first["items"]


def test_pages_read_again_come_from_the_page_cache_until_the_data_changes(fresh: MarketingCloudSandbox) -> None:
    """Encoded pages are kept per data version: the same bytes again, other fields apart, a write shows."""
    api = Api(fresh)
    params = {"$orderBy": "EngagementID", "$pageSize": 100}
    first = api.rowset("Campaign_Engagement", **params).json()
    second = api.rowset("Campaign_Engagement", **params).json()  # another request token, the same query

    def items(resp: requests.Response) -> bytes:
        assert resp.status_code == 200
        return resp.content[resp.content.index(b'"items":'):]

    page = items(api.next_page(first, 3))
    assert items(api.next_page(second, 3)) == page
    assert sum(len(r.pages) for r in fresh.tenant._results.values()) >= 2  # pages 1 and 3 are kept
    narrow = api.rowset("Campaign_Engagement", **params, **{"$fields": "EngagementID,EventDate"}).json()
    assert set(api.next_page(narrow, 3).json()["items"][0]["values"]) == {"eventdate"}
    row = json.loads(page[len(b'"items":'):-1])[0]
    fresh.tenant.execute(f"UPDATE {fresh.tenant.get('Campaign_Engagement').table} "
                         "SET \"CampaignName\" = 'Changed' WHERE \"EngagementID\" = ?", [row["keys"]["engagementid"]])
    changed = api.next_page(first, 3).json()["items"][0]
    assert changed["keys"] == row["keys"] and changed["values"]["campaignname"] == "Changed"


def test_unknown_key(api: Api) -> None:
    resp = api.rowset("No_Such_DE")
    assert resp.status_code == 404 and "cannot be retrieved for key" in resp.json()["message"]
    assert resp.json()["documentation"] == DOC


# -- $filter and $orderBy -----------------------------------------------------------------------------


def _contacts_filter(api: Api, flt: str) -> set[str]:
    return {i["keys"]["subscriberkey"] for i in api.read_all("Contacts_DE", **{"$filter": flt})}


C = pl.col


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ("CustomerStage eq 'Loyal'", C("CustomerStage") == "Loyal"),
        ("customerstage EQ 'Loyal'", C("CustomerStage") == "Loyal"),
        ("CustomerStage ne 'Loyal'", C("CustomerStage") != "Loyal"),
        ("CustomerStage neq 'Loyal'", C("CustomerStage") != "Loyal"),
        ("TotalOrders gt 5", C("TotalOrders") > 5),
        ("TotalOrders gte 5", C("TotalOrders") >= 5),
        ("TotalOrders lt 2", C("TotalOrders") < 2),
        ("TotalOrders lte 2", C("TotalOrders") <= 2),
        ("LifetimeValue gt 1000.5", C("LifetimeValue").cast(pl.Float64) > 1000.5),
        ("TotalOrders between 2 and 4", C("TotalOrders").is_between(2, 4)),
        ("OptIn eq true", C("OptIn")),
        ("OptIn eq 'False'", ~C("OptIn")),
        ("LastName eq 'O''Brien'", C("LastName") == "O'Brien"),
        ("CustomerStage eq 'New' and OptIn eq false", (C("CustomerStage") == "New") & ~C("OptIn")),
        ("CustomerStage eq 'New' or CustomerStage eq 'Lapsed'", C("CustomerStage").is_in(["New", "Lapsed"])),
        ("not CustomerStage eq 'New'", C("CustomerStage") != "New"),
        ("not (CustomerStage eq 'New' or TotalOrders gt 3) and OptIn eq true",
         ~((C("CustomerStage") == "New") | (C("TotalOrders") > 3)).fill_null(False) & C("OptIn")),
        ("(TotalOrders lt 1 or TotalOrders gt 20) and (Locale eq 'fr-FR')",
         ((C("TotalOrders") < 1) | (C("TotalOrders") > 20)) & (C("Locale") == "fr-FR")),
        ("FirstName eq 'Zoë'", C("FirstName") == "Zoë"),
    ],
)
def test_filter_operators(api: Api, flt: str, expected: pl.Expr) -> None:
    truth = api.sb.ground_truth("Contacts_DE").filter(expected.fill_null(False))
    want = set(truth["SubscriberKey"])
    assert want, "the case must select something"
    assert _contacts_filter(api, flt) == want


def test_date_literals_server_time_utc_offsets_and_us_format(api: Api) -> None:
    same_instant = ["'2026-10-03T00:00:00'", "'2026-10-03T06:00:00Z'", "'2026-10-03T08:00:00+02:00'",
                    "'10/3/2026 12:00:00 AM'"]
    results = {lit: _contacts_filter(api, f"ModifiedDate lt {lit}") for lit in same_instant}
    assert len({frozenset(v) for v in results.values()}) == 1
    truth = api.sb.ground_truth("Contacts_DE", end_utc=dt.datetime(2026, 10, 3, 6, tzinfo=UTC))
    assert results[same_instant[0]] == set(truth["SubscriberKey"])
    # A UTC day window, as the pipeline sends it, equals the ground truth's window, boundary rows included.
    lo, hi = dt.datetime(2026, 10, 4, tzinfo=UTC), dt.datetime(2026, 10, 5, tzinfo=UTC)
    window = api.read_all("Campaign_Engagement", **{
        "$filter": "EventDate gte '2026-10-04T00:00:00Z' and EventDate lt '2026-10-05T00:00:00Z'"})
    truth = api.sb.ground_truth("Campaign_Engagement", lo, hi)
    assert {i["keys"]["engagementid"] for i in window} == set(truth["EngagementID"])
    served = {i["values"]["eventdate"] for i in window}
    assert "10/3/2026 6:00:00 PM" in served  # 00:00:00 UTC is the evening before in server time
    assert "10/4/2026 12:00:00 AM" in served  # midnight server time = 06:00 UTC
    assert "10/4/2026 5:59:59 PM" in served  # 23:59:59 UTC
    between = api.rowset("Campaign_Engagement", **{
        "$filter": "EventDate between '2026-10-04T00:00:00Z' and '2026-10-04T23:59:59Z'"}).json()["count"]
    assert between == len(window)


def test_order_by(api: Api) -> None:
    def served(order: str) -> list[tuple[str, str]]:
        items = api.read_all("Web_Activities", **{"$orderBy": order, "$fields": "ActivityID,ActivityType",
                                                  "$pageSize": 2500})
        return [(i["values"]["activitytype"], i["keys"]["activityid"]) for i in items]

    asc = served("ActivityType asc, ActivityID desc")
    assert asc == sorted(asc, key=lambda r: (r[0], [-ord(c) for c in r[1]]))
    desc = served("activitytype DESC,activityid")
    assert desc == sorted(desc, key=lambda r: ([-ord(c) for c in r[0]], r[1]))
    ids = [i["keys"]["activityid"] for i in api.read_all("Web_Activities", **{"$orderBy": "ActivityID"})]
    assert ids == sorted(ids) and len(ids) == 20_000


@pytest.mark.parametrize(
    "params",
    [
        {"$filter": "CustomerStage eq"},
        {"$filter": "CustomerStage like 'L%'"},
        {"$filter": "Nope eq 'x'"},
        {"$filter": "(CustomerStage eq 'New'"},
        {"$filter": "CustomerStage eq 'unterminated"},
        {"$filter": "ModifiedDate gt 'yesterday'"},
        {"$filter": "TotalOrders gt 'many'"},
        {"$filter": "TotalOrders between 1 or 2"},
        {"$filter": "CustomerStage eq 'New' xor OptIn eq true"},
        {"$orderBy": "Nope asc"},
        {"$orderBy": "SubscriberKey sideways"},
        {"$fields": "SubscriberKey,Nope"},
    ],
)
def test_bad_requests_are_400_with_the_error_shape(api: Api, params: dict[str, str]) -> None:
    resp = api.rowset("Contacts_DE", **params)
    assert resp.status_code == 400
    body = resp.json()
    assert body["errorcode"] == 10000 and body["documentation"] == DOC and body["message"]


def test_spaces_encoded_as_plus_are_not_spaces(api: Api) -> None:
    """A strict server decodes the query as a URI: `+` is a plus sign, so a `+`-encoded filter is malformed."""
    flt = "CustomerStage eq 'New'"
    url = f"data/v1/customobjectdata/key/Contacts_DE/rowset?$filter={flt.replace(' ', '+')}"
    plus = api.get(url)
    assert plus.status_code == 400 and plus.json()["errorcode"] == 10000
    pct20 = api.get(f"data/v1/customobjectdata/key/Contacts_DE/rowset?$filter={flt.replace(' ', '%20')}")
    assert pct20.status_code == 200 and pct20.json()["count"] > 0
    # A literal plus inside a value stays a plus (`%2B` and `+` both decode to it).
    assert api.rowset("Contacts_DE", **{"$filter": "MobilePhone eq '+33 6'"}).status_code == 200
    raw = api.sb.queries()
    assert raw[-3].startswith("$filter=CustomerStage+eq") and "%20" in raw[-2] and "+" not in raw[-1]
    assert api.sb.stats()["query_plus"] >= 1 and api.sb.stats()["query_pct20"] >= 2


def test_filter_literals_are_parameters_not_sql(api: Api) -> None:
    resp = api.rowset("Contacts_DE", **{"$filter": "LastName eq 'x'') OR (1=1) --'"})
    assert resp.status_code == 200 and resp.json()["count"] == 0


# -- metadata -----------------------------------------------------------------------------------------


def fields_of(api: Api, key: str) -> list[dict[str, Any]]:
    found = api.get("data/v1/customobjects", {"$search": key}).json()
    de_id = next(i["id"] for i in found["items"] if i["key"] == key)
    return api.get(f"data/v1/customobjects/{de_id}/fields").json()["fields"]


def test_search_pages_25_at_a_time_whatever_page_size_says(fresh: MarketingCloudSandbox) -> None:
    """More than 25 matches: `count` is the total, pages of 25, `links.next` until the last, then empty pages."""
    for i in range(30):
        fresh.create_data_extension(f"List_{i:02d}", f"Mailing list {i:02d}", [
            {"name": "Email", "type": "EmailAddress", "length": 254, "isPrimaryKey": True}], sendable=i % 2 == 0)
    api = Api(fresh)
    first = api.get("data/v1/customobjects", {"$search": "mailing list", "$pageSize": 100}).json()
    assert (first["count"], first["page"], first["pageSize"], len(first["items"])) == (30, 1, 25, 25)
    assert first["links"]["next"] == "/v1/customobjects?$search=mailing%20list&$page=2"
    second = api.get("data" + first["links"]["next"]).json()
    assert (second["page"], len(second["items"]), "next" in second["links"]) == (2, 5, False)
    keys = [i["key"] for i in first["items"] + second["items"]]
    assert sorted(keys) == [f"List_{i:02d}" for i in range(30)]
    assert {i["key"]: i["isSendable"] for i in first["items"]}["List_00"] is True
    assert api.get("data/v1/customobjects", {"$search": "mailing list", "$page": 3}).json()["items"] == []
    everything = api.get("data/v1/customobjects", {"$search": ""}).json()  # empty term: matches all (UNCONFIRMED)
    assert everything["count"] == 35 and [i["isSendable"] for i in everything["items"][:2]] == [True, False]

def test_search_and_field_metadata(api: Api) -> None:
    assert api.get("data/v1/customobjects").status_code == 400  # $search is required
    found = api.get("data/v1/customobjects", {"$search": "ENGAGE"}).json()
    assert (found["count"], found["page"], found["pageSize"]) == (1, 1, 25) and "self" in found["links"]
    item = found["items"][0]
    assert (item["name"], item["key"], item["rowCount"]) == ("Campaign Engagement", "Campaign_Engagement", 20_000)
    by_description = api.get("data/v1/customobjects", {"$search": "lifecycle"}).json()["items"]
    assert [i["key"] for i in by_description] == ["Contacts_DE"]
    assert api.get("data/v1/customobjects", {"$search": "zzz"}).json()["count"] == 0
    rowset_id = api.rowset("Campaign_Engagement", **{"$pageSize": 1}).json()["customObjectId"]
    assert item["id"] == rowset_id
    one = api.get(f"data/v1/customobjects/{item['id']}").json()
    assert (one["id"], one["key"], one["name"]) == (item["id"], "Campaign_Engagement", "Campaign Engagement")
    body = api.get(f"data/v1/customobjects/{item['id']}/fields").json()
    assert body["id"] == item["id"]
    assert api.get("data/v1/customobjects/not-a-guid/fields").status_code == 404

    contacts = {f["name"]: f for f in fields_of(api, "Contacts_DE")}
    assert list(contacts) == ["SubscriberKey", "EmailAddress", "FirstName", "LastName", "CustomerStage", "OptIn",
                              "TotalOrders", "LifetimeValue", "LastOrderDate", "Locale", "MobilePhone",
                              "ModifiedDate"]
    assert [f["ordinal"] for f in contacts.values()] == list(range(1, 13))
    assert {n: f["type"] for n, f in contacts.items() if f["type"] != "Text"} == {
        "EmailAddress": "EmailAddress", "OptIn": "Boolean", "TotalOrders": "Number", "LifetimeValue": "Decimal",
        "LastOrderDate": "Date", "Locale": "Locale", "MobilePhone": "Phone", "ModifiedDate": "Date"}
    key = contacts["SubscriberKey"]
    assert key["isPrimaryKey"] and not key["isNullable"] and key["length"] == 254
    assert (contacts["LifetimeValue"]["length"], contacts["LifetimeValue"]["scale"]) == (18, 2)
    assert "length" not in contacts["TotalOrders"] and "length" not in contacts["ModifiedDate"]
    assert "scale" not in contacts["FirstName"]
    assert not contacts["ModifiedDate"]["isNullable"] and contacts["FirstName"]["isNullable"]
    for f in contacts.values():
        assert {"isHidden": False, "isReadOnly": False, "storageType": "Plain", "maskType": "None",
                "defaultValue": None}.items() <= f.items()
        assert isinstance(f["description"], str)


def test_search_pages_by_25_and_ignores_page_size(fresh: MarketingCloudSandbox) -> None:
    for i in range(30):
        fresh.create_data_extension(f"Extra_{i:02}", f"Extra {i}", [{"name": "Id", "type": "Text", "length": 10,
                                                                     "isPrimaryKey": True}])
    api = Api(fresh)
    first = api.get("data/v1/customobjects", {"$search": "extra", "$pageSize": 100}).json()
    assert (first["count"], first["pageSize"], len(first["items"])) == (30, 25, 25) and "next" in first["links"]
    second = api.get("data/v1/customobjects", {"$search": "extra", "$page": 2}).json()
    assert len(second["items"]) == 5 and "next" not in second["links"]


# -- upsert route -------------------------------------------------------------------------------------


def test_upsert_route_inserts_and_updates(fresh: MarketingCloudSandbox) -> None:
    api = Api(fresh)
    existing = api.rowset("Contacts_DE", **{"$pageSize": 1, "$orderBy": "SubscriberKey"}).json()["items"][0]
    key = existing["keys"]["subscriberkey"]
    body = [
        {"keys": {"SubscriberKey": key}, "values": {**existing["values"], "firstname": "Łukasz"}},
        {"keys": {"subscriberkey": "NEW-1"}, "values": {"EmailAddress": "new@example.com", "CustomerStage": "New",
                                                        "OptIn": "True", "TotalOrders": "0", "LifetimeValue": "",
                                                        "ModifiedDate": "10/2/2026 1:30:00 PM"}},
    ]
    resp = api.http.post(fresh.url + "hub/v1/dataevents/key:Contacts_DE/rowset", json=body,
                         headers={"Authorization": f"Bearer {api.token}"}, timeout=10)
    assert resp.status_code == 200
    got = {i["keys"]["subscriberkey"]: i["values"] for i in api.read_all(
        "Contacts_DE", **{"$filter": f"SubscriberKey eq '{key}' or SubscriberKey eq 'NEW-1'"})}
    assert got[key]["firstname"] == "Łukasz" and got[key]["lastname"] == existing["values"]["lastname"]
    assert got["NEW-1"]["modifieddate"] == "10/2/2026 1:30:00 PM" and got["NEW-1"]["lifetimevalue"] == ""
    truth = fresh.ground_truth("Contacts_DE").filter(C("SubscriberKey") == "NEW-1").row(0, named=True)
    assert truth["ModifiedDate"] == dt.datetime(2026, 10, 2, 19, 30, tzinfo=UTC) and truth["OptIn"] is True
    assert fresh.ground_truth("Contacts_DE").height == SMALL["Contacts_DE"] + 1
    headers = {"Authorization": f"Bearer {api.token}"}
    unknown = api.http.post(fresh.url + "hub/v1/dataevents/key:Nope/rowset", json=body, headers=headers, timeout=10)
    assert unknown.status_code == 404
    bad = api.http.post(fresh.url + "hub/v1/dataevents/key:Contacts_DE/rowset", data=b"{", headers=headers,
                        timeout=10)
    assert bad.status_code == 400
    no_auth = requests.post(fresh.url + "hub/v1/dataevents/key:Contacts_DE/rowset", json=body, timeout=10)
    assert no_auth.status_code == 401


# -- faults -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "errorcode", "retry_after"),
    [
        (Fault(route="rowset", kind="status", status=429, retry_after=3), 429, 50100, "3"),
        (Fault(route="rowset", kind="status", status=429, errorcode=50200), 429, 50200, None),
        (Fault(route="rowset", kind="status", status=503, retry_after=2), 503, 50300, "2"),
        (Fault(route="*", kind="status", status=500), 500, 0, None),
        (Fault(route="rowset", kind="status", status=401), 401, 0, None),
    ],
)
def test_status_faults_send_the_real_bodies(api: Api, fault: Fault, status: int, errorcode: int,
                                            retry_after: str | None) -> None:
    api.sb.set_faults([fault])
    resp = api.rowset("Contacts_DE", **{"$pageSize": 1})
    assert resp.status_code == status
    body = resp.json()
    assert body["errorcode"] == errorcode and body["documentation"] == DOC
    assert resp.headers.get("Retry-After") == retry_after
    if errorcode == 50100:
        assert body == {"message": "Rate limit exceeded", "errorcode": 50100, "retryAfter": 3, "documentation": DOC}
    assert api.rowset("Contacts_DE", **{"$pageSize": 1}).status_code == 200  # times=1 by default
    assert api.sb.stats()["faults_served"] == 1


def test_token_endpoint_throttling(api: Api) -> None:
    api.sb.set_faults([Fault(route="token", kind="status", status=429)])
    resp = requests.post(api.sb.url + "v2/token", json={}, timeout=10)
    assert resp.status_code == 429 and resp.json()["errorcode"] == 50200
    assert new_token(api.sb)


def test_after_times_and_key_select_requests(api: Api) -> None:
    api.sb.set_faults([Fault(route="rowset", kind="status", status=500, after=1, times=2, key="Web_Activities")])
    statuses = [api.rowset("Contacts_DE", **{"$pageSize": 1}).status_code]
    first = api.rowset("Web_Activities", **{"$pageSize": 1})
    statuses += [first.status_code, api.next_page(first.json()).status_code,
                 api.next_page(first.json(), 3).status_code, api.next_page(first.json(), 4).status_code]
    assert statuses == [200, 200, 500, 500, 200]  # token-route pages count as rowset requests of their key


def test_latency_applies_to_every_request_when_times_is_none(api: Api) -> None:
    api.sb.set_faults([Fault(route="fields", kind="latency", latency_ms=150, times=None)])
    de_id = api.rowset("Contacts_DE", **{"$pageSize": 1}).json()["customObjectId"]
    for _ in range(3):
        started = time.monotonic()
        assert api.get(f"data/v1/customobjects/{de_id}/fields").status_code == 200
        assert time.monotonic() - started >= 0.15
    with pytest.raises(requests.Timeout):
        api.get(f"data/v1/customobjects/{de_id}/fields", timeout=0.05)


def test_connection_faults(api: Api) -> None:
    api.sb.set_faults([Fault(route="rowset", kind="reset")])
    with pytest.raises(requests.ConnectionError):
        api.rowset("Contacts_DE")
    api.sb.set_faults([Fault(route="rowset", kind="truncate")])
    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        api.rowset("Contacts_DE")
    api.sb.set_faults([Fault(route="rowset", kind="malformed")])
    resp = api.rowset("Contacts_DE")
    assert resp.status_code == 200
    with pytest.raises(requests.JSONDecodeError):
        resp.json()
    assert api.rowset("Contacts_DE", **{"$pageSize": 1}).json()["count"] == 2000
    assert api.sb.stats()["faults_served"] == 3


def test_expire_token_fault_gives_a_401_and_a_new_token_works(api: Api) -> None:
    first = api.rowset("Contacts_DE", **{"$pageSize": 100}).json()
    api.sb.set_faults([Fault(route="rowset", kind="expire_token")])
    resp = api.next_page(first)
    assert resp.status_code == 401 and resp.json() == NOT_AUTHORIZED
    assert api.next_page(first).status_code == 401  # the old token is gone for good
    api.token = new_token(api.sb)
    assert api.next_page(first).json()["page"] == 2


@pytest.mark.parametrize("mutation", ["insert_before", "insert_after", "update", "delete"])
def test_mutate_fault_changes_rows_under_the_reader(fresh: MarketingCloudSandbox, mutation: str) -> None:
    flt = "EventDate gte '2026-10-02T00:00:00Z' and EventDate lt '2026-10-03T00:00:00Z'"
    api = Api(fresh)
    params = {"$filter": flt, "$orderBy": "EngagementID", "$pageSize": 20}
    first = api.rowset("Campaign_Engagement", **params).json()
    before = {i["keys"]["engagementid"] for i in api.read_all("Campaign_Engagement", **params)}
    fresh.set_faults([Fault(route="rowset", kind="mutate", mutation=mutation, n=3, key="Campaign_Engagement")])
    page2 = api.next_page(first).json()
    after = {i["keys"]["engagementid"]: flat(i) for i in api.read_all("Campaign_Engagement", **params)}
    expected_count = {"insert_before": 3, "insert_after": 3, "update": 0, "delete": -3}[mutation] + first["count"]
    assert page2["count"] == len(after) == expected_count
    window = fresh.ground_truth("Campaign_Engagement", dt.datetime(2026, 10, 2, tzinfo=UTC),
                                dt.datetime(2026, 10, 3, tzinfo=UTC))
    assert set(after) == set(window["EngagementID"])  # still inside the window, ground truth agrees
    if mutation == "insert_before":
        new = sorted(set(after) - before)
        assert len(new) == 3 and sorted(after)[:3] == new
        assert page2["items"][0]["keys"]["engagementid"] == first["items"][-3]["keys"]["engagementid"]
    elif mutation == "insert_after":
        assert len(set(after) - before) == 3 and sorted(after)[-3:] == sorted(set(after) - before)
    elif mutation == "delete":
        assert before - set(after) == set(sorted(before)[:3])
    else:
        assert set(after) == before
        assert sum("(updated)" in " ".join(r.values()) for r in after.values()) == 3


def test_faults_and_stats_over_http(api: Api) -> None:
    ctl = api.sb.url + "_sandbox/"
    assert requests.get(ctl + "health", timeout=5).json() == {"status": "ok"}
    rules = [{"route": "rowset", "kind": "status", "status": 503, "retry_after": 1, "times": None}]
    assert requests.post(ctl + "faults", json=rules, timeout=5).status_code == 200
    assert requests.get(ctl + "faults", timeout=5).json()[0]["status"] == 503
    assert api.rowset("Contacts_DE").status_code == 503
    assert api.rowset("Contacts_DE").status_code == 503
    assert requests.delete(ctl + "faults", timeout=5).status_code == 200
    body = api.rowset("Contacts_DE", **{"$pageSize": 10}).json()
    api.next_page(body)
    api.get(f"data/v1/customobjects/{body['customObjectId']}/fields")
    api.get("data/v1/customobjects", {"$search": "x"})
    stats = requests.get(ctl + "stats", timeout=5).json()
    assert {k: stats[k] for k in ("token", "rowset_key", "rowset_token", "fields", "search", "faults_served")} == {
        "token": 1, "rowset_key": 3, "rowset_token": 1, "fields": 1, "search": 1, "faults_served": 2}
    assert stats == api.sb.stats()
    bad = requests.post(ctl + "faults", json=[{"route": "rowset", "kind": "status", "bogus": 1}], timeout=5)
    assert bad.status_code == 400
    assert Fault.from_json(Fault(route="token", kind="latency", latency_ms=5).to_json()) == Fault(
        route="token", kind="latency", latency_ms=5)
    json.dumps(Fault().to_json())  # JSON-serialisable as is


# -- data: bad rows, schema drift, new data extensions ------------------------------------------------


DAY = dt.date(2026, 10, 3)


def _day_rows(api: Api, key: str, pk: str) -> dict[str, list[dict[str, str]]]:
    delta = {"Contacts_DE": "ModifiedDate", "Campaign_Engagement": "EventDate", "Web_Activities": "ActivityDate"}
    flt = f"{delta[key]} gte '{DAY}T00:00:00Z' and {delta[key]} lt '{DAY + dt.timedelta(days=1)}T00:00:00Z'"
    out: dict[str, list[dict[str, str]]] = {}
    for item in api.read_all(key, **{"$filter": flt}):
        out.setdefault(item["keys"][pk], []).append(item["values"])
    return out


@pytest.mark.parametrize(
    ("key", "kind", "column", "check"),
    [
        ("Contacts_DE", "invalid_email", "emailaddress", lambda v: "@" not in v or "@@" in v or " " in v.strip()),
        ("Contacts_DE", "missing_required", "emailaddress", lambda v: v == ""),
        ("Campaign_Engagement", "missing_required", "subscriberkey", lambda v: v == ""),
        ("Contacts_DE", "unparseable_date", "lastorderdate", lambda v: v == "13/45/2026 99:00:00 XM"),
        ("Campaign_Engagement", "unparseable_date", "eventdate", lambda v: v == "13/45/2026 99:00:00 XM"),
        ("Contacts_DE", "unparseable_number", "totalorders", lambda v: v == "4.5e"),
        ("Web_Activities", "unparseable_number", "orderamount", lambda v: v == "12,3.4"),
        ("Contacts_DE", "unparseable_boolean", "optin", lambda v: v == "Yes"),
        ("Contacts_DE", "unmapped_value", "customerstage", lambda v: v == "VIP"),
        ("Campaign_Engagement", "unmapped_value", "eventname", lambda v: v == "VIP"),
        ("Web_Activities", "unmapped_value", "activitytype", lambda v: v == "VIP"),
    ],
)
def test_inject_bad_rows(fresh: MarketingCloudSandbox, key: str, kind: str, column: str, check: Any) -> None:
    pk = PKS[key]
    keys = fresh.inject_bad_rows(key, kind, DAY, n=3)
    assert len(keys) == 3
    rows = _day_rows(Api(fresh), key, pk.lower())  # placed inside the UTC day
    for k in keys:
        assert len(rows[k]) == 1 and check(rows[k][0][column]), rows[k][0]
    assert set(keys) <= set(fresh.ground_truth(key)[pk])


def test_inject_duplicate_keys(fresh: MarketingCloudSandbox) -> None:
    keys = fresh.inject_bad_rows("Campaign_Engagement", "duplicate_key", DAY, n=2)
    assert len(keys) == 1
    served = _day_rows(Api(fresh), "Campaign_Engagement", "engagementid")[keys[0]]
    assert len(served) == 2 and served[0] != served[1] and served[0]["eventdate"] == served[1]["eventdate"]
    assert fresh.ground_truth("Campaign_Engagement").filter(C("EngagementID") == keys[0]).height == 2


def test_bad_row_kinds_need_a_fitting_column(fresh: MarketingCloudSandbox) -> None:
    with pytest.raises(ValueError, match="Boolean"):
        fresh.inject_bad_rows("Web_Activities", "unparseable_boolean", DAY)
    with pytest.raises(ValueError, match="unknown kind"):
        fresh.inject_bad_rows("Contacts_DE", "gremlins", DAY)
    with pytest.raises(KeyError, match="cannot be retrieved for key"):
        fresh.inject_bad_rows("Nope", "invalid_email", DAY)


def test_schema_drift_shows_in_metadata_and_rows(fresh: MarketingCloudSandbox) -> None:
    fresh.alter_schema("Web_Activities", add={"Score": "Number", "Note": "Text"}, drop=["FormName"],
                       retype={"OrderAmount": "Number"})
    api = Api(fresh)
    fields = {f["name"]: f for f in fields_of(api, "Web_Activities")}
    assert "FormName" not in fields and fields["Score"]["type"] == "Number" and fields["Note"]["type"] == "Text"
    assert fields["OrderAmount"]["type"] == "Number" and "scale" not in fields["OrderAmount"]
    items = api.read_all("Web_Activities", **{"$filter": "ActivityType eq 'Purchase'"})
    values = items[0]["values"]
    assert "formname" not in values and values["score"] == "" and values["note"] == ""
    assert all(re.match(r"^\d+$", i["values"]["orderamount"]) for i in items)
    truth = fresh.ground_truth("Web_Activities")
    assert "FormName" not in truth.columns and truth.schema["OrderAmount"] == pl.Int64


def test_create_data_extension_and_one_without_primary_key(fresh: MarketingCloudSandbox) -> None:
    fresh.create_data_extension("Store_Visits", "Store Visits", [
        {"name": "VisitId", "type": "Text", "length": 36, "isPrimaryKey": True},
        {"name": "Amount", "type": "Decimal", "length": 10, "scale": 3},
        {"name": "VisitedAt", "type": "Date", "isNullable": False},
    ], rows=[{"VisitId": "V1", "Amount": decimal.Decimal("1.5"), "VisitedAt": dt.datetime(2026, 10, 3, 10, tzinfo=UTC)}])
    fresh.create_data_extension("Log", "Log", [{"name": "Line", "type": "Text", "length": 100}],
                                rows=[{"Line": "hello"}])
    api = Api(fresh)
    visits = api.rowset("Store_Visits").json()
    assert visits["items"] == [{"keys": {"visitid": "V1"},
                                "values": {"amount": "1.500", "visitedat": "10/3/2026 4:00:00 AM"}}]
    assert api.rowset("Log").json()["items"] == [{"keys": {}, "values": {"line": "hello"}}]
    assert [i["key"] for i in api.get("data/v1/customobjects", {"$search": "store"}).json()["items"]] == [
        "Store_Visits"]
    truth = fresh.ground_truth("Store_Visits")
    assert truth.schema["Amount"] == pl.Decimal(10, 3)
    assert truth["VisitedAt"].to_list() == [dt.datetime(2026, 10, 3, 10, tzinfo=UTC)]


# -- the tenant's data ----------------------------------------------------------------------------------


def test_ground_truth_types_and_windows(sb: MarketingCloudSandbox) -> None:
    contacts = sb.ground_truth("Contacts_DE")
    assert contacts.schema == pl.Schema({
        "SubscriberKey": pl.String, "EmailAddress": pl.String, "FirstName": pl.String, "LastName": pl.String,
        "CustomerStage": pl.String, "OptIn": pl.Boolean, "TotalOrders": pl.Int64,
        "LifetimeValue": pl.Decimal(18, 2), "LastOrderDate": pl.Datetime("us", "UTC"), "Locale": pl.String,
        "MobilePhone": pl.String, "ModifiedDate": pl.Datetime("us", "UTC")})
    lo, hi = dt.datetime(2026, 10, 2, tzinfo=UTC), dt.datetime(2026, 10, 4, tzinfo=UTC)
    window = sb.ground_truth("Contacts_DE", lo, hi)
    assert window.height == contacts.filter(C("ModifiedDate").is_between(lo, hi, closed="left")).height > 0
    assert sb.ground_truth("Contacts_DE", start_utc=lo).height + sb.ground_truth(
        "Contacts_DE", end_utc=lo).height == contacts.height
    assert contacts["ModifiedDate"].min() >= dt.datetime(2026, 10, 1, tzinfo=UTC)
    assert contacts["ModifiedDate"].max() < dt.datetime(2026, 10, 8, tzinfo=UTC)


def test_data_looks_like_a_real_tenant(sb: MarketingCloudSandbox) -> None:
    contacts = sb.ground_truth("Contacts_DE")
    assert contacts.height == 2000 and contacts["SubscriberKey"].is_unique().all()
    emails = contacts["EmailAddress"]
    assert emails.null_count() == 0 and emails.str.strip_chars().str.contains(r"^[^@\s]+@[^@\s]+\.[^@\s]+$").all()
    assert (emails != emails.str.strip_chars()).any()
    assert (emails.str.strip_chars() != emails.str.strip_chars().str.to_lowercase()).any()
    names = set(contacts["FirstName"].drop_nulls()) | set(contacts["LastName"].drop_nulls())
    assert {"Zoë", "José", "Łukasz", "山田", "Ørsted"} <= names
    assert contacts["FirstName"].null_count() > 0 and contacts["MobilePhone"].null_count() > 0
    assert set(contacts["CustomerStage"]) == {"New", "Returning", "Loyal", "Lapsed"}
    assert set(contacts["Locale"].drop_nulls()) >= {"en-US", "fr-FR", "de-DE", "pt-BR", "ja-JP"}
    stage = {s: contacts.filter(C("CustomerStage") == s) for s in ("New", "Returning", "Loyal", "Lapsed")}
    assert stage["New"]["TotalOrders"].is_between(0, 1).all()
    assert stage["Returning"]["TotalOrders"].is_between(2, 4).all()
    assert (stage["Loyal"]["TotalOrders"] >= 5).all()
    lapsed_gap = stage["Lapsed"]["ModifiedDate"] - stage["Lapsed"]["LastOrderDate"]
    assert (lapsed_gap > dt.timedelta(days=90)).all()
    for s in ("New", "Returning", "Loyal"):
        with_orders = stage[s].filter(C("TotalOrders") > 0)
        assert ((with_orders["ModifiedDate"] - with_orders["LastOrderDate"]) <= dt.timedelta(days=90)).all()

    events = sb.ground_truth("Campaign_Engagement")
    assert events.height == 20_000 and events["EngagementID"].str.contains(GUID.pattern).all()
    counts = events["EventName"].value_counts().to_dict(as_series=False)
    n = dict(zip(counts["EventName"], counts["count"], strict=True))
    assert n["Sent"] > n["Opened"] > n["Clicked"] > n["Replied"] > n["Unsubscribed"] > 0 and n["Bounced"] > 0
    assert set(events["Channel"]) == {"Email", "SMS"}
    replied = events.filter(C("EventName") == "Replied")
    assert set(replied["ResponseSentiment"]) == {"Positive", "Negative", "Neutral"}
    assert events.filter(C("EventName") != "Replied")["ResponseSentiment"].null_count() == events.height - replied.height
    assert (events["LinkURL"].is_not_null() == (events["EventName"] == "Clicked")).all()
    unknown = ~events["SubscriberKey"].is_in(contacts["SubscriberKey"].implode())
    assert 0.003 < unknown.mean() < 0.03  # about 1% reference contacts the tenant does not have

    activities = sb.ground_truth("Web_Activities")
    assert set(activities["ActivityType"]) == {"PageView", "FormSubmit", "Purchase", "EmailOpen", "EmailClick"}
    purchase = activities["ActivityType"] == "Purchase"
    assert (activities["OrderID"].is_not_null() == purchase).all()
    assert (activities["OrderAmount"].is_not_null() == purchase).all()
    assert (activities["FormName"].is_not_null() == (activities["ActivityType"] == "FormSubmit")).all()

    for key, delta in (("Campaign_Engagement", "EventDate"), ("Web_Activities", "ActivityDate")):
        stamps = sb.ground_truth(key)[delta]
        assert (stamps.dt.microsecond() == 0).all()
        tod = (stamps.dt.hour().cast(pl.Int32) * 3600 + stamps.dt.minute().cast(pl.Int32) * 60
               + stamps.dt.second().cast(pl.Int32))
        assert (tod == 0).sum() > 0 and (tod == 6 * 3600).sum() > 0 and (tod == 86399).sum() > 0
        assert stamps.dt.date().n_unique() == 7  # spread over every day of the range


def test_generation_is_deterministic_and_persists(tmp_path: Path) -> None:
    kwargs: dict[str, Any] = {"start": START, "end": END, "rows": {"Contacts_DE": 80, "Campaign_Engagement": 300,
                                                                   "Web_Activities": 300}}
    with MarketingCloudSandbox(tmp_path / "a", **kwargs) as a, MarketingCloudSandbox(tmp_path / "b", **kwargs) as b:
        for key in KEYS:
            assert a.ground_truth(key).equals(b.ground_truth(key))
        assert a.client_secret != b.client_secret  # random per state directory
        secret = a.client_secret
        a.upsert_rows("Contacts_DE", [{**a.ground_truth("Contacts_DE").row(0, named=True), "FirstName": "Kept"}])
    with MarketingCloudSandbox(tmp_path / "a", **kwargs) as again:
        assert again.client_secret == secret
        assert "Kept" in again.ground_truth("Contacts_DE")["FirstName"].to_list()  # state survives a restart
    with MarketingCloudSandbox(tmp_path / "a", **{**kwargs, "seed": 8}) as reseeded:
        truth = reseeded.ground_truth("Contacts_DE")
        assert "Kept" not in truth["FirstName"].to_list() and truth.height == 80  # regenerated
    with MarketingCloudSandbox(tmp_path / "c", client_secret="given", **kwargs) as given:
        assert given.client_secret == "given"
        disc = given.discovery()
        assert disc == {"auth_base_uri": given.url, "client_id": "sandbox-client-id", "client_secret": "given",
                        "account_id": given.account_id}


def test_default_range_is_the_30_days_ending_yesterday(tmp_path: Path) -> None:
    with MarketingCloudSandbox(tmp_path, rows={"Contacts_DE": 50, "Campaign_Engagement": 2000,
                                               "Web_Activities": 50}) as sb:
        today = dt.datetime.now(UTC).date()
        stamps = sb.ground_truth("Campaign_Engagement")["EventDate"]
        assert stamps.min().date() == today - dt.timedelta(days=30)
        assert stamps.max().date() == today - dt.timedelta(days=1)


@pytest.mark.slow
def test_a_million_rows_are_served_page_by_page_in_order(tmp_path: Path) -> None:
    """A tenant-sized data extension: a day's filter, consecutive pages and the last of 400 pages hold exactly
    the rows they should. (How fast the sandbox serves pages is measured by `bench/extract.py`.)"""
    with MarketingCloudSandbox(tmp_path, start=dt.date(2026, 9, 1), end=dt.date(2026, 10, 1),
                               rows={"Campaign_Engagement": 1_000_000}) as sb:
        truth = sb.ground_truth("Campaign_Engagement")
        api = Api(sb)
        day = "EventDate gte '2026-09-10T00:00:00Z' and EventDate lt '2026-09-11T00:00:00Z'"
        first = api.rowset("Campaign_Engagement", **{"$filter": day, "$orderBy": "EngagementID asc"}).json()
        of_day = truth.filter(pl.col("EventDate").dt.date() == dt.date(2026, 9, 10)).sort("EngagementID")
        assert first["count"] == of_day.height and 30_000 < first["count"] < 37_000
        served = [i["keys"]["engagementid"] for i in first["items"]]
        for page in range(2, 12):
            items = api.next_page(first, page).json()["items"]
            assert len(items) == 2500
            served += [i["keys"]["engagementid"] for i in items]
        assert served == [str(k) for k in of_day["EngagementID"].head(len(served))]  # in order, none twice
        whole = api.rowset("Campaign_Engagement", **{"$orderBy": "EngagementID", "$pageSize": 2500}).json()
        assert whole["count"] == 1_000_000
        last = api.next_page(whole, 400).json()["items"]
    assert [i["keys"]["engagementid"] for i in last] == [str(k) for k in truth.sort("EngagementID")["EngagementID"].tail(2500)]

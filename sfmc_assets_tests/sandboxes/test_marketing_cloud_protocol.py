"""The Marketing Cloud sandbox speaks the real wire format (reference marketing-cloud-api.md §1-4, 9).

Plain `requests` here, not the project's client: these tests pin the protocol itself.
"""

import datetime as dt
import re
import time
from pathlib import Path

import pytest
import requests

from sfmc_assets.sandboxes.marketing_cloud import Fault, MarketingCloudSandbox
from sfmc_assets_tests.conftest import DATA_END, DATA_START

US_DATE = re.compile(r"^\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d{2}:\d{2} [AP]M$")


def token(sb: MarketingCloudSandbox) -> dict[str, str]:
    body = requests.post(sb.url + "v2/token", json={"grant_type": "client_credentials", "client_id": sb.client_id,
                                                      "client_secret": sb.client_secret}, timeout=10).json()
    return {"Authorization": f"Bearer {body['access_token']}"}


def rowset(sb: MarketingCloudSandbox, key: str = "Contacts_DE", headers: dict | None = None, **params: object):
    return requests.get(f"{sb.url}data/v1/customobjectdata/key/{key}/rowset", params=params,
                        headers=headers or token(sb), timeout=30)


def test_token_success_body(mc_sandbox: MarketingCloudSandbox) -> None:
    resp = requests.post(mc_sandbox.url + "v2/token", json={
        "grant_type": "client_credentials", "client_id": mc_sandbox.client_id,
        "client_secret": mc_sandbox.client_secret, "account_id": mc_sandbox.account_id}, timeout=10)
    body = resp.json()
    assert resp.status_code == 200
    assert body["expires_in"] == 1079 and body["token_type"] == "Bearer"
    assert body["rest_instance_url"].endswith("/") and body["soap_instance_url"].endswith("/")
    assert len(body["access_token"]) > 100


@pytest.mark.parametrize(
    ("payload", "status", "error", "description"),
    [
        ({"client_id": "nobody"}, 401, "invalid_client", "Invalid client ID"),
        ({"client_secret": "wrong"}, 401, "invalid_client", "Client authentication failed"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type", "client_credentials"),
        ({"account_id": "999"}, 401, "invalid_grant", "not accessible for this account"),
    ],
)
def test_token_errors(mc_sandbox: MarketingCloudSandbox, payload: dict, status: int, error: str,
                      description: str) -> None:
    base = {"grant_type": "client_credentials", "client_id": mc_sandbox.client_id,
            "client_secret": mc_sandbox.client_secret}
    resp = requests.post(mc_sandbox.url + "v2/token", json=base | payload, timeout=10)
    assert resp.status_code == status
    assert resp.json()["error"] == error and description in resp.json()["error_description"]


def test_tokens_really_expire(tmp_path: Path) -> None:
    with MarketingCloudSandbox(tmp_path, start=DATA_START, end=DATA_END, token_ttl_seconds=0.5,
                               rows={"Contacts_DE": 10, "Campaign_Engagement": 10, "Web_Activities": 10}) as sb:
        headers = token(sb)
        assert rowset(sb, headers=headers).status_code == 200
        time.sleep(0.7)
        resp = rowset(sb, headers=headers)
        assert resp.status_code == 401
        assert resp.json() == {"documentation": "https://developer.salesforce.com/docs/atlas.en-us.mc-apis.meta/"
                               "mc-apis/error-handling.htm", "errorcode": 0, "message": "Not Authorized"}


def test_token_in_the_url_is_refused(mc_sandbox: MarketingCloudSandbox) -> None:
    resp = rowset(mc_sandbox, access_token="x")
    assert resp.status_code == 401 and resp.json()["errorcode"] == 40004


def test_envelope(mc_sandbox: MarketingCloudSandbox) -> None:
    headers = token(mc_sandbox)
    first = rowset(mc_sandbox, headers=headers, **{"$page": 1, "$pageSize": 50, "$orderBy": "SubscriberKey asc"}).json()
    assert first["count"] == 2000 and first["page"] == 1 and first["pageSize"] == 50 and first["top"] == 0
    assert first["customObjectKey"] == "Contacts_DE"
    assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}$", first["tokenExpireDateUtc"])
    token_id = first["requestToken"]
    assert first["links"] == {"self": f"/v1/customobjectdata/token/{token_id}/rowset?$page=1",
                              "next": f"/v1/customobjectdata/token/{token_id}/rowset?$page=2"}
    item = first["items"][0]
    assert list(item["keys"]) == ["subscriberkey"]  # primary key only in keys, lower-cased
    assert "subscriberkey" not in item["values"] and "emailaddress" in item["values"]
    values = [v for it in first["items"] for v in it["values"].values()]
    assert all(isinstance(v, str) for v in values)
    assert {it["values"]["optin"] for it in first["items"]} <= {"True", "False"}
    assert all(US_DATE.match(it["values"]["modifieddate"]) for it in first["items"])
    assert "" in values  # NULL is an empty string
    last = requests.get(f"{mc_sandbox.url}data{first['links']['self'].replace('$page=1', '$page=40')}",
                        headers=headers, timeout=10).json()
    assert "next" not in last["links"] and len(last["items"]) == 50


def test_empty_result_has_no_items_key(mc_sandbox: MarketingCloudSandbox) -> None:
    body = rowset(mc_sandbox, **{"$filter": "SubscriberKey eq 'nobody'"}).json()
    assert body["count"] == 0 and "items" not in body and "next" not in body["links"]


def test_page_size_is_capped_and_names_are_case_insensitive(mc_sandbox: MarketingCloudSandbox) -> None:
    body = rowset(mc_sandbox, **{"$pagesize": 5000}).json()
    assert body["pageSize"] == 2500 and len(body["items"]) == 2000


def test_token_route_pins_the_query(mc_sandbox: MarketingCloudSandbox) -> None:
    headers = token(mc_sandbox)
    first = rowset(mc_sandbox, headers=headers, **{"$pageSize": 10, "$filter": "CustomerStage eq 'Loyal'",
                                                   "$orderBy": "SubscriberKey desc"}).json()
    second = requests.get(f"{mc_sandbox.url}data{first['links']['next']}", headers=headers, timeout=10).json()
    keys = [it["keys"]["subscriberkey"] for it in first["items"] + second["items"]]
    assert keys == sorted(keys, reverse=True) and len(keys) == 20
    assert all(it["values"]["customerstage"] == "Loyal" for it in second["items"])


@pytest.mark.parametrize(
    ("flt", "check"),
    [
        ("CustomerStage eq 'New'", lambda v: v["customerstage"] == "New"),
        ("CustomerStage ne 'New'", lambda v: v["customerstage"] != "New"),
        ("CustomerStage neq 'New'", lambda v: v["customerstage"] != "New"),
        ("TotalOrders gt 10", lambda v: int(v["totalorders"]) > 10),
        ("TotalOrders gte 10 and TotalOrders lte 12", lambda v: 10 <= int(v["totalorders"]) <= 12),
        ("TotalOrders lt 1", lambda v: int(v["totalorders"]) < 1),
        ("TotalOrders between 3 and 4", lambda v: 3 <= int(v["totalorders"]) <= 4),
        ("(CustomerStage eq 'New' or CustomerStage eq 'Lapsed') and OptIn eq true",
         lambda v: v["customerstage"] in ("New", "Lapsed") and v["optin"] == "True"),
        ("not (CustomerStage eq 'New')", lambda v: v["customerstage"] != "New"),
        ("customerstage EQ 'Loyal'", lambda v: v["customerstage"] == "Loyal"),
        ("LastName eq 'O''Brien'", lambda v: v["lastname"] == "O'Brien"),
    ],
)
def test_filters(mc_sandbox: MarketingCloudSandbox, flt: str, check) -> None:
    body = rowset(mc_sandbox, **{"$filter": flt}).json()
    assert body["count"] > 0, flt
    assert all(check({**it["keys"], **it["values"]}) for it in body["items"])


def test_date_literals_server_time_versus_utc(mc_sandbox: MarketingCloudSandbox) -> None:
    """`'2026-10-02T18:00:00'` is server time (UTC-6); `'2026-10-03T00:00:00Z'` is the same instant."""
    headers = token(mc_sandbox)
    server = rowset(mc_sandbox, headers=headers, **{"$filter": "ModifiedDate gte '2026-10-02T18:00:00' and "
                                                              "ModifiedDate lt '2026-10-03T18:00:00'"}).json()
    utc = rowset(mc_sandbox, headers=headers, **{"$filter": "ModifiedDate gte '2026-10-03T00:00:00Z' and "
                                                           "ModifiedDate lt '2026-10-04T00:00:00Z'"}).json()
    us = rowset(mc_sandbox, headers=headers, **{"$filter": "ModifiedDate between '10/2/2026 6:00:00 PM' and "
                                                          "'10/3/2026 5:59:59 PM'"}).json()
    assert server["count"] == utc["count"] == us["count"] > 0
    truth = mc_sandbox.ground_truth("Contacts_DE", dt.datetime(2026, 10, 3, tzinfo=dt.timezone.utc),
                                    dt.datetime(2026, 10, 4, tzinfo=dt.timezone.utc))
    assert truth.height == server["count"]


@pytest.mark.parametrize("flt", ["Nope eq 'x'", "CustomerStage eq", "TotalOrders eq 'many'", "CustomerStage like 'x'"])
def test_bad_filters_are_400(mc_sandbox: MarketingCloudSandbox, flt: str) -> None:
    resp = rowset(mc_sandbox, **{"$filter": flt})
    assert resp.status_code == 400 and resp.json()["errorcode"] == 10000


def test_unknown_key(mc_sandbox: MarketingCloudSandbox) -> None:
    resp = rowset(mc_sandbox, key="Nope")
    assert resp.status_code == 404 and "cannot be retrieved for key Nope" in resp.json()["message"]


def test_field_metadata(mc_sandbox: MarketingCloudSandbox) -> None:
    headers = token(mc_sandbox)
    assert requests.get(f"{mc_sandbox.url}data/v1/customobjects", headers=headers, timeout=10).status_code == 400
    found = requests.get(f"{mc_sandbox.url}data/v1/customobjects", params={"$search": "engagement"},
                         headers=headers, timeout=10).json()
    assert [i["key"] for i in found["items"]] == ["Campaign_Engagement"]
    fields = requests.get(f"{mc_sandbox.url}data/v1/customobjects/{found['items'][0]['id']}/fields",
                          headers=headers, timeout=10).json()["fields"]
    by_name = {f["name"]: f for f in fields}
    assert by_name["EngagementID"]["isPrimaryKey"] and not by_name["EngagementID"]["isNullable"]
    assert by_name["EventDate"]["type"] == "Date" and "length" not in by_name["EventDate"]
    contacts = requests.get(f"{mc_sandbox.url}data/v1/customobjects", params={"$search": "Contacts_DE"},
                            headers=headers, timeout=10).json()["items"][0]
    cfields = requests.get(f"{mc_sandbox.url}data/v1/customobjects/{contacts['id']}/fields", headers=headers,
                           timeout=10).json()["fields"]
    types = {f["type"] for f in cfields}
    assert types == {"Text", "EmailAddress", "Boolean", "Number", "Decimal", "Date", "Locale", "Phone"}
    decimal = next(f for f in cfields if f["type"] == "Decimal")
    assert (decimal["length"], decimal["scale"]) == (18, 2)


def test_upsert_route(fresh_mc_sandbox: MarketingCloudSandbox) -> None:
    headers = token(fresh_mc_sandbox)
    resp = requests.post(f"{fresh_mc_sandbox.url}hub/v1/dataevents/key:Contacts_DE/rowset", headers=headers,
                         json=[{"keys": {"SubscriberKey": "NEW-1"},
                                "values": {"EmailAddress": "new@example.com", "CustomerStage": "New", "OptIn": "True",
                                           "ModifiedDate": "10/4/2026 6:00:00 PM"}}], timeout=10)
    assert resp.status_code == 200
    row = fresh_mc_sandbox.ground_truth("Contacts_DE").filter(SubscriberKey="NEW-1").row(0, named=True)
    assert row["ModifiedDate"] == dt.datetime(2026, 10, 5, tzinfo=dt.timezone.utc)  # 6 PM server = 00:00 UTC
    assert row["OptIn"] is True


@pytest.mark.parametrize(
    ("fault", "status", "errorcode"),
    [
        (Fault(route="rowset", kind="status", status=429, retry_after=3), 429, 50100),
        (Fault(route="rowset", kind="status", status=429, errorcode=50200), 429, 50200),
        (Fault(route="rowset", kind="status", status=503, retry_after=2), 503, 50300),
        (Fault(route="rowset", kind="status", status=500), 500, 0),
    ],
)
def test_status_faults_use_real_bodies(mc_sandbox: MarketingCloudSandbox, fault: Fault, status: int,
                                       errorcode: int) -> None:
    headers = token(mc_sandbox)
    mc_sandbox.set_faults([fault])
    resp = rowset(mc_sandbox, headers=headers)
    assert resp.status_code == status and resp.json()["errorcode"] == errorcode
    if fault.retry_after is not None:
        assert resp.headers["Retry-After"] == str(fault.retry_after)
    assert rowset(mc_sandbox, headers=headers).status_code == 200  # times=1 by default


def test_throttled_token_endpoint(mc_sandbox: MarketingCloudSandbox) -> None:
    mc_sandbox.set_faults([Fault(route="token", kind="status", status=429)])
    resp = requests.post(mc_sandbox.url + "v2/token", json={}, timeout=10)
    assert resp.status_code == 429 and resp.json()["errorcode"] == 50200


def test_faults_over_http_and_counters(mc_sandbox: MarketingCloudSandbox) -> None:
    resp = requests.post(mc_sandbox.url + "_sandbox/faults",
                         json=[{"route": "rowset", "kind": "status", "status": 500, "after": 1, "times": 1}], timeout=10)
    assert resp.status_code == 200
    headers = token(mc_sandbox)
    codes = [rowset(mc_sandbox, headers=headers).status_code for _ in range(3)]
    assert codes == [200, 500, 200]
    stats = requests.get(mc_sandbox.url + "_sandbox/stats", timeout=10).json()
    assert stats["rowset_key"] == 3 and stats["faults_served"] == 1 and stats["token"] == 1
    assert requests.post(mc_sandbox.url + "_sandbox/faults", json=[{"bogus": 1}], timeout=10).status_code == 400


def test_malformed_truncated_and_reset(mc_sandbox: MarketingCloudSandbox) -> None:
    headers = token(mc_sandbox)
    mc_sandbox.set_faults([Fault(route="rowset", kind="malformed")])
    with pytest.raises(requests.JSONDecodeError):
        rowset(mc_sandbox, headers=headers).json()
    mc_sandbox.set_faults([Fault(route="rowset", kind="truncate")])
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        rowset(mc_sandbox, headers=headers)
    mc_sandbox.set_faults([Fault(route="rowset", kind="reset")])
    with pytest.raises(requests.ConnectionError):
        rowset(mc_sandbox, headers=headers)


def test_schema_drift_shows_in_metadata_and_rows(fresh_mc_sandbox: MarketingCloudSandbox) -> None:
    fresh_mc_sandbox.alter_schema("Web_Activities", add={"Score": "Number"}, drop=["FormName"])
    headers = token(fresh_mc_sandbox)
    item = rowset(fresh_mc_sandbox, key="Web_Activities", headers=headers, **{"$pageSize": 1}).json()["items"][0]
    assert "score" in item["values"] and "formname" not in item["values"]


def test_generation_is_deterministic(tmp_path: Path) -> None:
    kwargs = {"start": DATA_START, "end": DATA_END, "rows": {"Contacts_DE": 50, "Campaign_Engagement": 50,
                                                              "Web_Activities": 50}}
    with MarketingCloudSandbox(tmp_path / "a", **kwargs) as a, MarketingCloudSandbox(tmp_path / "b", **kwargs) as b:
        for key in ("Contacts_DE", "Campaign_Engagement", "Web_Activities"):
            assert a.ground_truth(key).equals(b.ground_truth(key))


def test_dirty_rows_a_real_tenant_has(mc_sandbox: MarketingCloudSandbox) -> None:
    contacts = mc_sandbox.ground_truth("Contacts_DE")
    emails = contacts["EmailAddress"]
    assert (emails != emails.str.strip_chars()).any()  # leading/trailing spaces
    assert (emails.str.strip_chars() != emails.str.strip_chars().str.to_lowercase()).any()  # mixed case
    assert contacts["FirstName"].null_count() > 0
    assert any(not n.isascii() for n in contacts["FirstName"].drop_nulls())
    events = mc_sandbox.ground_truth("Campaign_Engagement")
    assert (~events["SubscriberKey"].is_in(contacts["SubscriberKey"].implode())).any()  # unknown contacts
    assert set(events["EventName"]) == {"Sent", "Opened", "Clicked", "Replied", "Unsubscribed", "Bounced"}


@pytest.mark.slow
def test_a_million_rows_generate_and_page_quickly(tmp_path: Path) -> None:
    started = time.monotonic()
    with MarketingCloudSandbox(tmp_path, start=dt.date(2026, 9, 1), end=dt.date(2026, 10, 1),
                               rows={"Campaign_Engagement": 1_000_000}) as sb:
        generated = time.monotonic() - started
        headers = token(sb)
        first = rowset(sb, key="Campaign_Engagement", headers=headers,
                       **{"$orderBy": "EngagementID asc"}).json()
        assert first["count"] == 1_000_000
        started = time.monotonic()
        for page in (2, 200, 400):
            body = requests.get(f"{sb.url}data/v1/customobjectdata/token/{first['requestToken']}/rowset",
                                params={"$page": page}, headers=headers, timeout=30).json()
            assert len(body["items"]) == 2500
        per_page = (time.monotonic() - started) / 3
    assert generated < 60, generated
    assert per_page < 0.5, per_page

"""The Experience Platform sandbox over real HTTP: IMS, gateway, Catalog, batch ingestion, faults, state."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests

from sfmc_assets.sandboxes.experience_platform import (
    SEED_DATASETS,
    ExperiencePlatformSandbox,
    Fault,
    schema_field_paths,
)

CONTACTS, ENGAGEMENT, ACTIVITIES = (s.id for s in SEED_DATASETS[:3])
IMPORT = "/data/foundation/import"
CATALOG = "/data/foundation/catalog"


def _start(state_dir: Path, **kwargs: Any) -> ExperiencePlatformSandbox:
    kwargs.setdefault("processing_delay_s", 0.05)
    kwargs.setdefault("max_file_bytes", 64 * 1024)
    return ExperiencePlatformSandbox(state_dir, **kwargs).start()


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[ExperiencePlatformSandbox]:
    sb = _start(tmp_path / "aep")
    yield sb
    sb.stop()


class Client:
    """A minimal publisher-like client, so each test reads as the wire protocol."""

    def __init__(self, sb: ExperiencePlatformSandbox) -> None:
        self.sb = sb
        self.info = sb.discovery()
        self.http = requests.Session()
        self.token = self.new_token()

    def new_token(self) -> str:
        resp = self.http.post(f"{self.info['ims_url']}/ims/token/v3", data=self.form())
        assert resp.status_code == 200, resp.text
        return resp.json()["access_token"]

    def form(self, **overrides: str) -> dict[str, str]:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.info["client_id"],
            "client_secret": self.info["client_secret"],
            "scope": self.info["scopes"],
        }
        form.update(overrides)
        return form

    def headers(self, **overrides: str | None) -> dict[str, str]:
        headers: dict[str, str | None] = {
            "Authorization": f"Bearer {self.token}",
            "x-api-key": self.info["client_id"],
            "x-gw-ims-org-id": self.info["org_id"],
            "x-sandbox-name": self.info["sandbox_name"],
        }
        headers.update(overrides)
        return {k: v for k, v in headers.items() if v is not None}

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.http.get(self.sb.url + path, headers=self.headers(), **kw)

    def post_json(self, path: str, body: Any) -> requests.Response:
        return self.http.post(self.sb.url + path, headers=self.headers(), json=body)

    def create_batch(self, dataset_id: str, fmt: str = "parquet", **extra: Any) -> str:
        resp = self.post_json(
            f"{IMPORT}/batches", {"datasetId": dataset_id, "inputFormat": {"format": fmt}, **extra}
        )
        assert resp.status_code == 201, resp.text
        return resp.json()["id"]

    def upload(
        self, batch_id: str, dataset_id: str, name: str, data: bytes, **headers: str
    ) -> requests.Response:
        return self.http.put(
            f"{self.sb.url}{IMPORT}/batches/{batch_id}/datasets/{dataset_id}/files/{name}",
            headers=self.headers(**{"Content-Type": "application/octet-stream", **headers}),
            data=data,
        )

    def action(self, batch_id: str, action: str, content_type: str | None = "application/json") -> requests.Response:
        return self.http.post(
            f"{self.sb.url}{IMPORT}/batches/{batch_id}?action={action}",
            headers=self.headers(**{"Content-Type": content_type}),
        )

    def batch(self, batch_id: str) -> dict[str, Any]:
        resp = self.get(f"{CATALOG}/batches/{batch_id}")
        assert resp.status_code == 200, resp.text
        return resp.json()[batch_id]

    def wait(self, batch_id: str, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            batch = self.batch(batch_id)
            if batch["status"] not in ("loading", "processing") or time.monotonic() > deadline:
                return batch
            time.sleep(0.02)

    def ingest(self, dataset_id: str, data: bytes, fmt: str = "parquet", **extra: Any) -> dict[str, Any]:
        batch_id = self.create_batch(dataset_id, fmt, **extra)
        assert self.upload(batch_id, dataset_id, f"part-0.{fmt}", data).status_code == 201
        assert self.action(batch_id, "COMPLETE").status_code == 200
        return self.wait(batch_id)


@pytest.fixture
def client(sandbox: ExperiencePlatformSandbox) -> Client:
    return Client(sandbox)


# -- data builders ----------------------------------------------------------------------------------

IDENTITY = pa.struct([("id", pa.string()), ("primary", pa.bool_())])
IDENTITY_MAP = pa.map_(pa.string(), pa.list_(IDENTITY))
UTC = pa.timestamp("ms", tz="UTC")  # XDM DateTime in Parquet: INT64 TIMESTAMP_MILLIS
CONTACTS_ARROW = pa.schema(
    [
        ("_id", pa.string()),
        ("person", pa.struct([("name", pa.struct([("firstName", pa.string()), ("lastName", pa.string())]))])),
        ("personalEmail", pa.struct([("address", pa.string())])),
        ("identityMap", IDENTITY_MAP),
        (
            "_sfmcsandbox",
            pa.struct(
                [
                    (
                        "lifecycle",
                        pa.struct(
                            [
                                ("subscriberKey", pa.string()),
                                ("stage", pa.string()),
                                ("optIn", pa.bool_()),
                                ("totalOrders", pa.int64()),
                                ("lifetimeValue", pa.decimal128(18, 2)),
                                ("lastOrderDate", UTC),
                                ("locale", pa.string()),
                                ("modifiedAt", UTC),
                            ]
                        ),
                    )
                ]
            ),
        ),
    ]
)


def contact(n: int, **lifecycle: Any) -> dict[str, Any]:
    email = f"user{n}@example.com"
    return {
        "_id": f"contact-{n}",
        "person": {"name": {"firstName": f"First{n}", "lastName": f"Last{n}"}},
        "personalEmail": {"address": email},
        "identityMap": [
            ("Email", [{"id": email, "primary": True}]),
            ("SFMCSubscriberKey", [{"id": f"SK{n}", "primary": False}]),
        ],
        "_sfmcsandbox": {
            "lifecycle": {
                "subscriberKey": f"SK{n}",
                "stage": "repeat",
                "optIn": True,
                "totalOrders": n,
                "lifetimeValue": decimal.Decimal("12.50"),
                "lastOrderDate": dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.timezone.utc),
                "locale": "en-US",
                "modifiedAt": dt.datetime(2024, 5, 2, tzinfo=dt.timezone.utc),
                **lifecycle,
            }
        },
    }


def contacts_parquet(rows: list[dict[str, Any]]) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=CONTACTS_ARROW), buf)
    return buf.getvalue()


def event(n: int, **overrides: Any) -> dict[str, Any]:
    record = {
        "_id": f"evt-{n}",
        "timestamp": "2024-05-01T10:00:00Z",
        "eventType": "directMarketing.emailOpened",
        "identityMap": {"Email": [{"id": f"user{n}@example.com", "primary": True}]},
        "_sfmcsandbox": {
            "engagement": {"engagementId": f"E{n}", "campaignId": "SPRING-24", "action": "open"}
        },
    }
    record.update(overrides)
    return record


def jsonl(rows: list[Any]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


# -- IMS ----------------------------------------------------------------------------------------------


def test_token_success_has_the_real_ims_shape(client: Client) -> None:
    resp = client.http.post(f"{client.info['ims_url']}/ims/token/v3", data=client.form())
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer" and body["expires_in"] == 86399
    assert body["access_token"].startswith("eyJ")


@pytest.mark.parametrize(
    ("overrides", "error", "description"),
    [
        ({"client_secret": "wrong"}, "invalid_client", "invalid client_secret parameter"),
        ({"client_id": "someone-else"}, "invalid_client", "invalid client_id parameter"),
        ({"grant_type": "authorization_code"}, "unauthorized_client", None),
        ({"scope": ""}, "invalid_scope", None),
    ],
)
def test_token_failures_are_oauth_errors(
    client: Client, overrides: dict[str, str], error: str, description: str | None
) -> None:
    resp = client.http.post(f"{client.info['ims_url']}/ims/token/v3", data=client.form(**overrides))
    assert resp.status_code == 400
    assert resp.json()["error"] == error
    if description:
        assert resp.json()["error_description"] == description


def test_tokens_really_expire(tmp_path: Path) -> None:
    with _start(tmp_path, token_ttl_seconds=1.5) as sb:
        client = Client(sb)
        resp = client.http.post(f"{sb.url}/ims/token/v3", data=client.form())
        assert resp.json()["expires_in"] == 0  # honest about a short lifetime
        assert client.get(f"{CATALOG}/dataSets/{CONTACTS}").status_code == 200
        time.sleep(1.6)
        resp = client.get(f"{CATALOG}/dataSets/{CONTACTS}")
        assert resp.status_code == 401
        assert resp.json() == {"error_code": "401013", "message": "Oauth token is not valid"}


# -- gateway ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "status", "code"),
    [
        ({"Authorization": None}, 403, "403010"),
        ({"Authorization": "Bearer not-a-token"}, 401, "401013"),
        ({"x-api-key": None}, 403, "403000"),
        ({"x-api-key": "other-client"}, 403, "403003"),
        ({"x-gw-ims-org-id": None}, 400, "400003"),
        ({"x-gw-ims-org-id": "not-an-org"}, 403, "403027"),
        ({"x-gw-ims-org-id": "OTHERORG@AdobeOrg"}, 403, "403025"),
        ({"x-sandbox-name": None}, 400, "400003"),
        ({"x-sandbox-name": "dev"}, 403, "403025"),
    ],
)
def test_gateway_rules(client: Client, overrides: dict[str, str | None], status: int, code: str) -> None:
    for method, path in (("GET", f"{CATALOG}/dataSets/{CONTACTS}"), ("POST", f"{IMPORT}/batches")):
        resp = client.http.request(method, client.sb.url + path, headers=client.headers(**overrides), json={})
        assert resp.status_code == status, (method, resp.text)
        assert resp.json()["error_code"] == code


def test_gateway_requires_a_content_type_on_bodies(client: Client) -> None:
    resp = client.http.post(client.sb.url + f"{IMPORT}/batches", headers=client.headers(), data=b"{}")
    assert resp.status_code == 400
    assert resp.json()["detail"] == "A valid content-type must be specified"


def test_batch_actions_need_a_json_content_type_even_without_a_body(client: Client) -> None:
    batch_id = client.create_batch(ENGAGEMENT, "json")
    client.upload(batch_id, ENGAGEMENT, "f.json", jsonl([event(1)]))
    for content_type in (None, "text/plain"):
        refused = client.action(batch_id, "COMPLETE", content_type=content_type)
        assert refused.status_code == 400, content_type
        assert refused.json()["detail"] == "A valid content-type must be specified"
    assert client.batch(batch_id)["status"] == "loading"
    assert client.action(batch_id, "COMPLETE").status_code == 200


def test_parquet_datetimes_must_be_timestamp_millis(client: Client) -> None:
    """Adobe's mapping table: XDM DateTime is INT64 TIMESTAMP_MILLIS; other units fail the file."""
    rows = [contact(1)]
    millis = client.ingest(CONTACTS, contacts_parquet(rows))
    assert millis["status"] == "success"

    def in_micros(t: pa.DataType) -> pa.DataType:
        if pa.types.is_timestamp(t):
            return pa.timestamp("us", tz=t.tz)
        return pa.struct([pa.field(f.name, in_micros(f.type)) for f in t]) if pa.types.is_struct(t) else t

    micros = pa.Table.from_pylist(rows, schema=pa.schema([pa.field(f.name, in_micros(f.type))
                                                          for f in CONTACTS_ARROW]))
    buf = io.BytesIO()
    pq.write_table(micros, buf)
    failed = client.ingest(CONTACTS, buf.getvalue())
    assert failed["status"] == "failed"
    errors = client.sb.batches()[-1]["rowErrors"][0]["errors"]
    assert {e["pointerToViolation"] for e in errors} == {"#/_sfmcsandbox/lifecycle/lastOrderDate",
                                                          "#/_sfmcsandbox/lifecycle/modifiedAt"}
    assert "TIMESTAMP_MILLIS" in errors[0]["message"]


# -- Catalog datasets ---------------------------------------------------------------------------------


def test_dataset_get_and_list_are_keyed_objects(client: Client) -> None:
    resp = client.get(f"{CATALOG}/dataSets/{ENGAGEMENT}")
    assert resp.status_code == 200
    (dataset,) = resp.json().values()
    assert list(resp.json()) == [ENGAGEMENT]
    assert dataset["name"] == "SFMC Campaign Engagement"
    assert dataset["schemaRef"]["id"] == "https://ns.adobe.com/sfmcsandbox/schemas/sfmc-campaign-engagement"
    assert dataset["tags"]["unifiedProfile"] == ["enabled:true"]
    listing = client.get(
        f"{CATALOG}/dataSets", params={"properties": "name,schemaRef", "tags": "unifiedProfile:*"}
    )
    assert listing.status_code == 200
    assert set(listing.json()) == {seed.id for seed in SEED_DATASETS if "unifiedProfile" in seed.tags}
    assert set(listing.json()[CONTACTS]) == {"name", "schemaRef"}
    assert list(client.get(f"{CATALOG}/dataSets", params={"limit": 1, "start": 1}).json()) == [ENGAGEMENT]
    assert client.get(f"{CATALOG}/dataSets", params={"limit": 0}).status_code == 400
    assert client.get(f"{CATALOG}/dataSets/5ad0c0a1e0c7a5d0deadbeef").status_code == 404


def test_seeded_schemas_use_xdm_paths() -> None:
    paths = schema_field_paths(SEED_DATASETS[2].schema)
    assert paths["web.webPageDetails.URL"] == "string"
    assert paths["commerce.order.priceTotal"] == "number"
    assert paths["_sfmcsandbox.activity.orderAmount"] == "number"
    assert schema_field_paths(SEED_DATASETS[0].schema)["_sfmcsandbox.lifecycle.lastOrderDate"] == "date-time"


def test_create_dataset_on_a_registered_schema_and_ingest(client: Client) -> None:
    schema = {
        "$id": "https://ns.adobe.com/sfmcsandbox/schemas/sfmc-sends",
        "title": "SFMC Sends",
        "meta:class": "https://ns.adobe.com/xdm/context/experienceevent",
        "type": "object",
        "properties": {"_sfmcsandbox": {"type": "object", "properties": {"sendId": {"type": "string"}}}},
    }
    resp = client.http.post(f"{client.sb.url}/_sandbox/schemas", json=schema)
    assert resp.status_code == 201
    bad = client.post_json(
        f"{CATALOG}/dataSets", {"name": "x", "schemaRef": {"id": "https://ns.adobe.com/nope"}}
    )
    assert bad.status_code == 400
    resp = client.post_json(
        f"{CATALOG}/dataSets",
        {
            "name": "SFMC Sends",
            "schemaRef": {"id": schema["$id"], "contentType": "application/vnd.adobe.xed+json;version=1"},
        },
    )
    assert resp.status_code == 201
    (ref,) = resp.json()
    dataset_id = ref.removeprefix("@/dataSets/")
    assert client.get(f"{CATALOG}/dataSets/{dataset_id}").json()[dataset_id]["name"] == "SFMC Sends"
    # Event class makes _id and timestamp required even though the schema above did not list them.
    ok = {"_id": "s1", "timestamp": "2024-01-01T00:00:00Z", "_sfmcsandbox": {"sendId": "S1"}}
    assert client.ingest(dataset_id, jsonl([ok]), "json")["status"] == "success"
    assert (
        client.ingest(dataset_id, jsonl([{"_sfmcsandbox": {"sendId": "S2"}}]), "json")["status"] == "failed"
    )
    assert client.sb.live_records(dataset_id) == [{**ok, "timestamp": "2024-01-01T00:00:00.000Z"}]


# -- batch lifecycle ----------------------------------------------------------------------------------


def test_parquet_batch_goes_loading_processing_success_with_metrics(tmp_path: Path) -> None:
    with _start(tmp_path, processing_delay_s=0.4) as sb:
        client = Client(sb)
        resp = client.post_json(
            f"{IMPORT}/batches", {"datasetId": CONTACTS, "inputFormat": {"format": "Parquet"}}
        )
        assert resp.status_code == 201
        created = resp.json()
        assert created["status"] == "loading"
        assert created["relatedObjects"] == [{"type": "dataSet", "id": CONTACTS}]
        assert created["imsOrg"] == sb.org_id and len(created["id"]) == 26
        batch_id = created["id"]
        data = contacts_parquet([contact(1), contact(2), contact(3)])
        assert client.upload(batch_id, CONTACTS, "part=a/file.parquet", data).status_code == 201
        assert client.upload(batch_id, CONTACTS, "part=a/file.parquet", data).status_code == 200  # replaced
        assert client.batch(batch_id)["status"] == "loading"
        resp = client.action(batch_id, "COMPLETE")
        assert resp.status_code == 200 and resp.content == b""
        assert client.batch(batch_id)["status"] == "processing"
        batch = client.wait(batch_id)
    assert batch["status"] == "success"
    assert batch["metrics"] == {
        "inputByteSize": len(data),
        "inputFileCount": 1,
        "inputRecordCount": 3,
        "outputRecordCount": 3,
        "failedRecordCount": 0,
    }
    assert batch["started"] <= batch["completed"]
    records = sb.live_records(CONTACTS)
    assert records[0] == {
        "_id": "contact-1",
        "person": {"name": {"firstName": "First1", "lastName": "Last1"}},
        "personalEmail": {"address": "user1@example.com"},
        "identityMap": {
            "Email": [{"id": "user1@example.com", "primary": True}],
            "SFMCSubscriberKey": [{"id": "SK1", "primary": False}],
        },
        "_sfmcsandbox": {
            "lifecycle": {
                "subscriberKey": "SK1",
                "stage": "repeat",
                "optIn": True,
                "totalOrders": 1,
                "lifetimeValue": 12.5,
                "lastOrderDate": "2024-05-01T10:00:00.000Z",
                "locale": "en-US",
                "modifiedAt": "2024-05-02T00:00:00.000Z",
            }
        },
    }


def test_polars_parquet_with_struct_identity_map_and_nulls(client: Client) -> None:
    frame = pl.DataFrame(
        {
            "_id": ["a1", "a2"],
            "timestamp": [dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)] * 2,
            "eventType": ["commerce.purchases", "web.webpagedetails.pageViews"],
            "identityMap": [
                {"Email": [{"id": "a@example.com", "primary": True}], "SFMCSubscriberKey": None},
                {"Email": None, "SFMCSubscriberKey": [{"id": "SK2", "primary": True}]},
            ],
            "web": [None, {"webPageDetails": {"URL": "https://example.com/", "name": "home"}}],
            "commerce": [{"order": {"priceTotal": 19.99, "purchaseID": "O1"}}, None],
            "_sfmcsandbox": [
                {
                    "activity": {
                        "activityId": "A1",
                        "kind": "purchase",
                        "orderAmount": 19.99,
                        "formName": None,
                    }
                },
                {
                    "activity": {
                        "activityId": "A2",
                        "kind": "page_view",
                        "orderAmount": None,
                        "formName": None,
                    }
                },
            ],
        }
    )
    buf = io.BytesIO()
    frame.with_columns(pl.col("timestamp").dt.cast_time_unit("ms")).write_parquet(buf)
    batch = client.ingest(ACTIVITIES, buf.getvalue())
    assert batch["status"] == "success", client.sb.batches()[-1]["rowErrors"]
    second = client.sb.live_records(ACTIVITIES)[1]
    assert second["identityMap"] == {"SFMCSubscriberKey": [{"id": "SK2", "primary": True}]}
    assert "commerce" not in second and second["_sfmcsandbox"]["activity"] == {
        "activityId": "A2",
        "kind": "page_view",
    }


def test_json_lines_and_multiline_json(client: Client) -> None:
    assert client.ingest(ENGAGEMENT, jsonl([event(1), event(2)]), "json")["status"] == "success"
    array = orjson.dumps([event(3)], option=orjson.OPT_INDENT_2)
    # A pretty-printed array without isMultiLineJson is unreadable line by line...
    assert client.ingest(ENGAGEMENT, array, "json")["status"] == "failed"
    # ...and fine with it; epoch milliseconds are a valid date-time.
    multi = {"datasetId": ENGAGEMENT, "inputFormat": {"format": "json", "isMultiLineJson": True}}
    batch_id = client.post_json(f"{IMPORT}/batches", multi).json()["id"]
    client.upload(batch_id, ENGAGEMENT, "f.json", orjson.dumps([event(4, timestamp=1714557600000)]))
    client.action(batch_id, "COMPLETE")
    assert client.wait(batch_id)["status"] == "success"
    assert [r["_id"] for r in client.sb.live_records(ENGAGEMENT)] == ["evt-1", "evt-2", "evt-4"]
    assert client.sb.live_records(ENGAGEMENT)[-1]["timestamp"] == "2024-05-01T10:00:00.000Z"


BAD_EVENTS = [
    ({"_id": None}, "INGEST-1555-400", "#/_id"),  # explicit null
    ({"timestamp": "2018-00-23T22:07:01Z"}, "INGEST-1401-400", "#/timestamp"),
    ({"timestamp": "2024-05-01 10:00"}, "INGEST-1401-400", "#/timestamp"),
    ({"_id": 42}, "INGEST-1401-400", "#/_id"),
    ({"eventType": ""}, "INGEST-1555-400", "#/eventType"),
    ({"campaign": "x"}, "INGEST-1401-400", "#/campaign"),  # extraneous key
    (
        {"identityMap": {"Email": [{"id": "x", "primary": "yes"}]}},
        "INGEST-1401-400",
        "#/identityMap/Email/0/primary",
    ),
    ({"identityMap": {"CRMID": [{"id": "x", "primary": True}]}}, "INGEST-1401-400", "#/identityMap/CRMID"),
    ({"identityMap": {"Email": [{"primary": True}]}}, "INGEST-1555-400", "#/identityMap/Email/0/id"),
    ({"identityMap": {"Email": [{"id": "x", "primary": False}]}}, "INGEST-1555-400", "#/identityMap"),
]


@pytest.mark.parametrize(("override", "code", "pointer"), BAD_EVENTS)
def test_each_invalid_record_fails_the_batch(
    client: Client, override: dict[str, Any], code: str, pointer: str
) -> None:
    batch = client.ingest(
        ENGAGEMENT, jsonl([event(1), event(2, **override)]), "json", enableErrorDiagnostics=True
    )
    assert batch["status"] == "failed"
    assert batch["metrics"]["failedRecordCount"] == 1 and batch["metrics"]["outputRecordCount"] == 0
    assert batch["errors"][0]["code"] == "INGEST-1212-400"
    assert {"code": code, "recordCount": 1}.items() <= batch["errors"][1].items()
    (view,) = client.sb.batches(ENGAGEMENT)
    assert view["rowErrors"][0]["row"] == 1
    assert view["rowErrors"][0]["errors"][0]["pointerToViolation"] == pointer
    assert client.sb.live_records(ENGAGEMENT) == []


def test_missing_required_fields_and_type_errors_in_contacts(client: Client) -> None:
    rows = [event(1, _id="x")]  # an event is not a contact: extraneous timestamp/eventType
    rows.append(
        {
            "identityMap": {"Email": [{"id": "a@example.com", "primary": True}]},
            "_sfmcsandbox": {"lifecycle": {"optIn": "yes", "totalOrders": 1.5}},
        }
    )
    rows.append({"personalEmail": {"address": "b@example.com"}})  # no primary identity on a Profile dataset
    batch = client.ingest(CONTACTS, jsonl(rows), "json")
    assert batch["status"] == "failed"
    # Without error diagnostics Platform only reports the generic code.
    assert [e["code"] for e in batch["errors"]] == ["INGEST-1211-400"]
    messages = [e["message"] for r in client.sb.batches()[0]["rowErrors"] for e in r["errors"]]
    assert "expected type: Boolean, found: String" in messages
    assert "expected type: Integer, found: Double" in messages


def test_partial_ingestion_tolerates_a_percentage(client: Client) -> None:
    rows = [event(i) for i in range(9)] + [event(9, _id=None)]
    batch = client.ingest(
        ENGAGEMENT, jsonl(rows), "json", enableErrorDiagnostics=True, partialIngestionPercent=10
    )
    assert batch["status"] == "success"
    assert batch["tags"] == {"acp_enableErrorDiagnostics": True, "acp_partialIngestionPercent": 10}
    assert batch["metrics"]["outputRecordCount"] == 9 and batch["metrics"]["failedRecordCount"] == 1
    assert [e["code"] for e in batch["errors"]] == ["INGEST-1212-400", "INGEST-1555-400"]
    assert len(client.sb.live_records(ENGAGEMENT)) == 9


def test_empty_file_and_corrupt_parquet_fail(client: Client) -> None:
    empty = client.ingest(ENGAGEMENT, b"", "json")
    assert empty["status"] == "failed" and empty["errors"][0]["code"] == "106"
    corrupt = client.ingest(CONTACTS, b"PAR1 not really parquet", "parquet", enableErrorDiagnostics=True)
    assert corrupt["status"] == "failed"
    assert corrupt["errors"][1]["code"] == "INGEST-1401-400"


def test_replay_batch_replaces_its_predecessor(client: Client) -> None:
    first = client.ingest(CONTACTS, contacts_parquet([contact(1), contact(2)]))
    other = client.ingest(CONTACTS, contacts_parquet([contact(9)]))
    replay = {"predecessors": [f"${first['id']}"], "reason": "replace"}
    bad = client.post_json(
        f"{IMPORT}/batches",
        {"datasetId": ENGAGEMENT, "inputFormat": {"format": "parquet"}, "replay": replay},
    )
    assert bad.status_code == 400  # predecessor belongs to another dataset
    # A failed replay leaves the predecessor live.
    failed = client.ingest(CONTACTS, contacts_parquet([contact(1, stage="")]), replay=replay)
    assert failed["status"] == "failed"
    assert client.sb.batches(CONTACTS)[0]["live"] is True
    second = client.ingest(CONTACTS, contacts_parquet([contact(1, stage="loyal")]), replay=replay)
    assert second["status"] == "success" and second["replay"] == replay
    assert client.batch(first["id"])["status"] == "inactive"
    live = {b["id"]: b["live"] for b in client.sb.batches(CONTACTS)}
    assert live == {first["id"]: False, other["id"]: True, failed["id"]: False, second["id"]: True}
    assert client.sb.batches(CONTACTS)[0]["supersededBy"] == second["id"]
    records = client.sb.live_records(CONTACTS)
    assert sorted(r["_id"] for r in records) == ["contact-1", "contact-9"]
    assert (
        next(r for r in records if r["_id"] == "contact-1")["_sfmcsandbox"]["lifecycle"]["stage"] == "loyal"
    )


def test_upload_size_limit(client: Client) -> None:
    batch_id = client.create_batch(ENGAGEMENT, "json")
    resp = client.upload(batch_id, ENGAGEMENT, "big.json", b"x" * (64 * 1024 + 1))
    assert resp.status_code == 413
    assert client.sb.stats()["upload"] == 1
    assert client.upload(batch_id, ENGAGEMENT, "ok.json", jsonl([event(1)])).status_code == 201


def test_batches_over_the_guardrails_fail_at_ingestion_with_the_documented_message(tmp_path: Path) -> None:
    with ExperiencePlatformSandbox(tmp_path, processing_delay_s=0.05, max_files_per_batch=2) as sb:
        client = Client(sb)
        batch_id = client.create_batch(ENGAGEMENT, "json")
        for n in range(3):
            assert client.upload(batch_id, ENGAGEMENT, f"part-{n}.json", jsonl([event(n)])).status_code == 201
        assert client.action(batch_id, "COMPLETE").status_code == 200
        batch = client.wait(batch_id)
        assert batch["status"] == "failed"
        assert batch["errors"][0]["description"] == "Batch ingestion guardrails hit: 3 files (over the 2 threshold)"
        two = client.create_batch(ENGAGEMENT, "json")
        for n in range(2):
            client.upload(two, ENGAGEMENT, f"part-{n}.json", jsonl([event(10 + n)]))
        client.action(two, "COMPLETE")
        assert client.wait(two)["status"] == "success"


def test_large_file_upload_in_parts(client: Client) -> None:
    """INITIALIZE, PATCH parts with Content-Range (any order), HEAD for the range received, COMPLETE;
    overlapping or missing chunks are refused at completion."""
    data = contacts_parquet([contact(n) for n in range(1, 4)])
    batch_id = client.create_batch(CONTACTS)
    url = f"{client.sb.url}{IMPORT}/batches/{batch_id}/datasets/{CONTACTS}/files/big.parquet"
    json_type, octets = {"Content-Type": "application/json"}, {"Content-Type": "application/octet-stream"}

    def part(first: int, last: int, content_range: str | None = None) -> requests.Response:
        headers = client.headers(**octets, **{"Content-Range": content_range or f"bytes {first}-{last}"})
        return client.http.patch(url, headers=headers, data=data[first:last + 1])

    assert client.http.post(url, params={"action": "INITIALIZE"}, headers=client.headers(**json_type)).status_code == 201
    assert part(100, len(data) - 1).json() == {"name": "big.parquet", "sizeInBytes": len(data) - 100}
    assert client.http.head(url, headers=client.headers()).headers["Range"] == f"bytes=0-{len(data) - 1}"
    missing = client.http.post(url, params={"action": "COMPLETE"}, headers=client.headers(**json_type))
    assert missing.status_code == 400 and "missing at byte 0" in missing.json()["detail"]
    assert part(0, 150).status_code == 200
    overlapping = client.http.post(url, params={"action": "COMPLETE"}, headers=client.headers(**json_type))
    assert overlapping.status_code == 400 and "overlapping" in overlapping.json()["detail"]
    assert part(5, 9, "bytes 5-99").status_code == 400  # the range says more than the body holds


def test_large_file_upload_completes_into_the_batch(client: Client) -> None:
    data = contacts_parquet([contact(n) for n in range(1, 4)])
    batch_id = client.create_batch(CONTACTS)
    url = f"{client.sb.url}{IMPORT}/batches/{batch_id}/datasets/{CONTACTS}/files/big.parquet"
    json_type = client.headers(**{"Content-Type": "application/json"})
    client.http.post(url, params={"action": "INITIALIZE"}, headers=json_type)
    for first in range(0, len(data), 1000):
        last = min(first + 999, len(data) - 1)
        headers = client.headers(**{"Content-Type": "application/octet-stream", "Content-Range": f"bytes {first}-{last}"})
        assert client.http.patch(url, headers=headers, data=data[first:last + 1]).status_code == 200
    assert client.http.post(url, params={"action": "COMPLETE"}, headers=json_type).status_code == 201
    assert client.action(batch_id, "COMPLETE").status_code == 200
    assert client.wait(batch_id)["status"] == "success"
    assert client.sb.batches(CONTACTS)[-1]["files"] == {"big.parquet": len(data)}
    not_started = client.http.patch(url.replace("big.parquet", "other.parquet"), data=b"x", headers=client.headers(
        **{"Content-Type": "application/octet-stream", "Content-Range": "bytes 0-0"}))
    assert not_started.status_code in (400, 404)


def test_upload_rules(client: Client) -> None:
    batch_id = client.create_batch(ENGAGEMENT, "json")
    assert (
        client.upload(
            batch_id, ENGAGEMENT, "f.json", b"{}", **{"Content-Type": "application/json"}
        ).status_code
        == 415
    )
    assert client.upload("01NOPE", ENGAGEMENT, "f.json", b"{}").status_code == 404
    assert client.upload(batch_id, CONTACTS, "f.json", b"{}").status_code == 404
    client.upload(batch_id, ENGAGEMENT, "f.json", jsonl([event(1)]))
    client.action(batch_id, "COMPLETE")
    assert client.upload(batch_id, ENGAGEMENT, "g.json", b"{}").status_code == 400
    assert client.action(batch_id, "COMPLETE").status_code == 200  # safe to retry
    assert client.wait(batch_id)["status"] == "success"
    assert client.action(batch_id, "COMPLETE").status_code == 200
    assert client.action("01NOPE", "COMPLETE").status_code == 404
    assert client.action(batch_id, "EXPLODE").status_code == 400
    bad = client.post_json(f"{IMPORT}/batches", {"datasetId": "nope", "inputFormat": {"format": "json"}})
    assert bad.status_code == 400
    assert client.post_json(f"{IMPORT}/batches", {"datasetId": ENGAGEMENT}).status_code == 400


def test_abort(client: Client) -> None:
    batch_id = client.create_batch(ENGAGEMENT, "json")
    client.upload(batch_id, ENGAGEMENT, "f.json", jsonl([event(1)]))
    assert client.action(batch_id, "ABORT").status_code == 200
    assert client.batch(batch_id)["status"] == "aborted"
    assert client.action(batch_id, "ABORT").status_code == 200
    assert client.action(batch_id, "COMPLETE").status_code == 400
    assert client.upload(batch_id, ENGAGEMENT, "g.json", b"{}").status_code == 400
    done = client.ingest(ENGAGEMENT, jsonl([event(2)]), "json")
    assert client.action(done["id"], "ABORT").status_code == 400  # finalized batches cannot be aborted
    assert client.action(done["id"], "REVERT").status_code == 200
    assert client.batch(done["id"])["status"] == "inactive"
    assert client.sb.live_records(ENGAGEMENT) == []


def test_abort_while_processing_wins(tmp_path: Path) -> None:
    with _start(tmp_path, processing_delay_s=0.3) as sb:
        client = Client(sb)
        batch_id = client.create_batch(ENGAGEMENT, "json")
        client.upload(batch_id, ENGAGEMENT, "f.json", jsonl([event(1)]))
        client.action(batch_id, "COMPLETE")
        assert client.action(batch_id, "ABORT").status_code == 200
        time.sleep(0.5)
        assert client.batch(batch_id)["status"] == "aborted"


def test_catalog_batch_listing(client: Client) -> None:
    a = client.ingest(ENGAGEMENT, jsonl([event(1)]), "json")
    b = client.ingest(ENGAGEMENT, jsonl([event(2, _id=None)]), "json")
    listing = client.get(
        f"{CATALOG}/batches", params={"dataSet": ENGAGEMENT, "orderBy": "desc:created"}
    ).json()
    assert list(listing) == [b["id"], a["id"]]
    failed = client.get(f"{CATALOG}/batches", params={"status": "failed", "properties": "status"}).json()
    assert failed == {b["id"]: {"status": "failed"}}
    assert client.get(f"{CATALOG}/batches/01NOPE").status_code == 404


def test_catalog_batch_filters_select_on_the_server(client: Client) -> None:
    """`tags`, `externalId`, `createdAfter`, `status` and `dataSet` as in Adobe's catalog.yaml."""
    day1 = client.ingest(ENGAGEMENT, jsonl([event(1)]), "json", tags={"label": ["campaigns/2026-10-01"]},
                         externalId="ext-1")
    day2 = client.ingest(ENGAGEMENT, jsonl([event(2)]), "json", tags={"label": ["campaigns/2026-10-02"]})
    other = client.ingest(CONTACTS, contacts_parquet([contact(1)]), tags={"label": ["campaigns/2026-10-01"]})

    def ids(**params: Any) -> list[str]:
        return list(client.get(f"{CATALOG}/batches", params={"orderBy": "desc:created", **params}).json())

    assert ids(dataSet=ENGAGEMENT, tags="label:campaigns/2026-10-01") == [day1["id"]]
    assert ids(tags="label:campaigns/2026-10-01") == [other["id"], day1["id"]]
    assert ids(dataSet=ENGAGEMENT, tags="label:campaigns/*") == [day2["id"], day1["id"]]
    assert ids(dataSet=ENGAGEMENT, tags="label:campaigns/2026-10-01,acp_enableErrorDiagnostics:*") == []
    assert ids(externalId="ext-1") == [day1["id"]]
    assert ids(dataSet=ENGAGEMENT, createdAfter=str(day1["created"])) == [day2["id"]]
    assert ids(dataSet=ENGAGEMENT, status="success", tags="label:campaigns/2026-10-02") == [day2["id"]]
    assert ids(dataSet=ENGAGEMENT, status="failed", tags="label:*") == []


def test_seeded_batches_are_listed_like_any_other(client: Client) -> None:
    seeded = client.sb.seed_batches(ENGAGEMENT, [{"label": [f"old/{n}"]} for n in range(250)])
    newest = client.get(f"{CATALOG}/batches", params={"dataSet": ENGAGEMENT, "orderBy": "desc:created",
                                                      "limit": 100}).json()
    assert list(newest) == seeded[::-1][:100]
    one = client.get(f"{CATALOG}/batches", params={"tags": "label:old/7"}).json()
    assert list(one) == [seeded[7]] and one[seeded[7]]["status"] == "success"


# -- faults -------------------------------------------------------------------------------------------


def test_http_fault_with_after_and_times(client: Client) -> None:
    client.sb.set_faults([Fault(route="create_batch", status=503, after=1, times=2)])
    body = {"datasetId": ENGAGEMENT, "inputFormat": {"format": "json"}}
    codes = [client.post_json(f"{IMPORT}/batches", body).status_code for _ in range(4)]
    assert codes == [201, 503, 503, 201]
    client.sb.set_faults([Fault(route="catalog_dataset", status=429, retry_after=7)])
    resp = client.get(f"{CATALOG}/dataSets/{CONTACTS}")
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "7"
    assert resp.json()["status"] == 429
    client.sb.clear_faults()
    assert client.get(f"{CATALOG}/dataSets/{CONTACTS}").status_code == 200


@pytest.mark.parametrize(
    "route", ["ims", "create_batch", "upload", "complete", "catalog_batch", "catalog_dataset"]
)
@pytest.mark.parametrize("status", [500, 429])
def test_http_fault_on_every_route(client: Client, route: str, status: int) -> None:
    batch_id = client.create_batch(ENGAGEMENT, "json")
    client.sb.set_faults([Fault(route=route, status=status, times=1)])
    calls = {
        "ims": lambda: client.http.post(f"{client.sb.url}/ims/token/v3", data=client.form()),
        "create_batch": lambda: client.post_json(
            f"{IMPORT}/batches", {"datasetId": ENGAGEMENT, "inputFormat": {"format": "json"}}
        ),
        "upload": lambda: client.upload(batch_id, ENGAGEMENT, "f.json", jsonl([event(1)])),
        "complete": lambda: client.action(batch_id, "COMPLETE"),
        "catalog_batch": lambda: client.get(f"{CATALOG}/batches/{batch_id}"),
        "catalog_dataset": lambda: client.get(f"{CATALOG}/dataSets/{ENGAGEMENT}"),
    }
    first = calls[route]()
    assert first.status_code == status
    if status == 429:
        assert first.headers["Retry-After"] == "1"
    if route == "ims":
        assert first.json()["error"] in ("server_error", "too_many_requests")
    assert calls[route]().status_code in (200, 201)


def test_fail_batch_and_stuck_faults_via_json(client: Client) -> None:
    resp = client.http.post(
        f"{client.sb.url}/_sandbox/faults",
        json={
            "faults": [
                {"kind": "fail_batch", "times": 1, "error_code": "INGEST-1401-400"},
                {"kind": "stuck_processing", "after": 1, "times": 1},
            ]
        },
    )
    assert resp.status_code == 200 and len(resp.json()["faults"]) == 2
    failed = client.ingest(ENGAGEMENT, jsonl([event(1)]), "json")
    assert failed["status"] == "failed" and failed["errors"][0]["code"] == "INGEST-1401-400"
    batch_id = client.create_batch(ENGAGEMENT, "json")
    client.upload(batch_id, ENGAGEMENT, "f.json", jsonl([event(2)]))
    client.action(batch_id, "COMPLETE")
    time.sleep(0.3)
    assert client.batch(batch_id)["status"] == "processing"
    assert client.ingest(ENGAGEMENT, jsonl([event(3)]), "json")["status"] == "success"
    bad = client.http.post(f"{client.sb.url}/_sandbox/faults", json=[{"kind": "meteor"}])
    assert bad.status_code == 400
    assert client.http.delete(f"{client.sb.url}/_sandbox/faults").json() == {"faults": []}


def test_expire_tokens_fault(client: Client) -> None:
    client.sb.set_faults([Fault(kind="expire_tokens", route="catalog_batch", times=1)])
    assert client.get(f"{CATALOG}/dataSets/{CONTACTS}").status_code == 200
    batch_id = client.create_batch(ENGAGEMENT, "json")
    resp = client.get(f"{CATALOG}/batches/{batch_id}")
    assert resp.status_code == 401 and resp.json()["error_code"] == "401013"
    assert client.get(f"{CATALOG}/dataSets/{CONTACTS}").status_code == 401
    client.token = client.new_token()
    assert client.get(f"{CATALOG}/batches/{batch_id}").status_code == 200


def test_stats_count_requests_per_route(client: Client) -> None:
    client.ingest(ENGAGEMENT, jsonl([event(1)]), "json")
    stats = client.http.get(f"{client.sb.url}/_sandbox/stats").json()
    assert (
        stats["ims"] == 1 and stats["create_batch"] == 1 and stats["upload"] == 1 and stats["complete"] == 1
    )
    assert stats["catalog_batch"] >= 1


# -- persistence and inspection -----------------------------------------------------------------------


def test_state_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "aep"
    with _start(state, processing_delay_s=0.3) as sb:
        client = Client(sb)
        done = client.ingest(ENGAGEMENT, jsonl([event(1)]), "json")
        pending = client.create_batch(ENGAGEMENT, "json")
        client.upload(pending, ENGAGEMENT, "f.json", jsonl([event(2)]))
        client.action(pending, "COMPLETE")  # stopped before the worker promotes it
        secret, token = sb.client_secret, client.token
    with _start(state) as sb2:
        assert sb2.client_secret == secret
        client = Client(sb2)
        client.token = token  # tokens outlive a restart, as at Adobe
        assert client.batch(done["id"])["status"] == "success"
        assert client.wait(pending)["status"] == "success"
        assert [r["_id"] for r in sb2.live_records(ENGAGEMENT)] == ["evt-1", "evt-2"]


def test_inspection_endpoints(client: Client) -> None:
    first = client.ingest(ENGAGEMENT, jsonl([event(1)]), "json")
    client.ingest(
        ENGAGEMENT, jsonl([event(2)]), "json", replay={"predecessors": [first["id"]], "reason": "replace"}
    )
    live = client.http.get(
        f"{client.sb.url}/_sandbox/datasets/{ENGAGEMENT}/records", params={"live": "true"}
    ).json()
    assert [r["_id"] for r in live["records"]] == ["evt-2"] and live["count"] == 1
    everything = client.http.get(f"{client.sb.url}/_sandbox/datasets/{ENGAGEMENT}/records?live=false").json()
    assert [r["_id"] for r in everything["records"]] == ["evt-1", "evt-2"]
    batches = client.http.get(f"{client.sb.url}/_sandbox/batches", params={"dataset": ENGAGEMENT}).json()
    assert [(b["status"], b["live"]) for b in batches] == [("inactive", False), ("success", True)]
    assert batches[1]["predecessors"] == [first["id"]]
    assert client.http.get(f"{client.sb.url}/_sandbox/datasets/nope/records").status_code == 404
    discovery = client.http.get(f"{client.sb.url}/_sandbox/discovery").json()
    assert discovery["datasets"] == {seed.key: seed.id for seed in SEED_DATASETS}

"""The XDM mapping: the configured mappings fit the sandbox schemas, nulls are omitted, `_id`s are deterministic.

Records are checked with the sandbox's own validator on the Parquet bytes we produce, i.e. exactly what
batch promotion would decide, without the HTTP round trip (the client tests do that part).
"""

import datetime as dt
import io
import uuid

import polars as pl
import pyarrow.parquet as pq
import pytest
import yaml
from pydantic import ValidationError

from sfmc_assets.lib.experience_platform import (
    XdmMapping,
    XdmMappingError,
    column_lineage,
    to_parquet_bytes,
    to_parquet_files,
    to_xdm,
)
from sfmc_assets.lib.experience_platform.xdm import XDM_ID_NAMESPACE, _record_ids
from sfmc_assets.sandboxes.experience_platform import SEED_DATASETS, schema_field_paths
from sfmc_assets.sandboxes.experience_platform.schemas import Validator
from sfmc_assets_tests.experience_platform.support import (
    activities_frame,
    configured_mappings,
    contacts_frame,
    engagement_frame,
)

SEEDS = {s.key: s for s in SEED_DATASETS}
FRAMES = {"contacts": contacts_frame, "engagement": engagement_frame, "activities": activities_frame}


def _parquet_rows(frame: pl.DataFrame) -> list[dict]:
    return pq.read_table(io.BytesIO(to_parquet_bytes(frame))).to_pylist()


def _validated(kind: str) -> list[dict]:
    """Map the kind's frame with the configured mapping and validate every Parquet row like the sandbox does."""
    mapping = configured_mappings()[kind]
    validator = Validator(SEEDS[kind].schema, require_primary_identity=True)
    out = []
    for row in _parquet_rows(to_xdm(FRAMES[kind](), mapping)):
        record, errors = validator.validate(row, from_parquet=True)
        assert errors == [], errors
        out.append(record)
    return out


@pytest.mark.parametrize("kind", ["contacts", "engagement", "activities"])
def test_configured_mappings_target_the_seeded_datasets_and_their_fields(kind: str) -> None:
    mapping = configured_mappings()[kind]
    assert mapping.dataset == SEEDS[kind].id
    paths = schema_field_paths(SEEDS[kind].schema)
    for xdm_path in column_lineage(mapping):
        root = xdm_path.split(".")[0] if xdm_path.startswith("identityMap.") else xdm_path
        assert root in paths, f"{xdm_path} is not a field of {SEEDS[kind].schema['$id']}"


@pytest.mark.parametrize("kind", ["contacts", "engagement", "activities"])
def test_mapped_rows_are_valid_xdm(kind: str) -> None:
    records = _validated(kind)
    assert len(records) == FRAMES[kind]().height


def test_contacts_records_omit_nulls_and_keep_values() -> None:
    complete, sparse, blank = _validated("contacts")
    assert complete["person"] == {"name": {"firstName": "Ann", "lastName": "Lee"}}
    assert complete["identityMap"] == {
        "Email": [{"id": "ann@example.com", "primary": True}],
        "SFMCSubscriberKey": [{"id": "c-1", "primary": False}],
    }
    lifecycle = complete["_sfmcsandbox"]["lifecycle"]
    assert lifecycle["lifetimeValue"] == 10.5 and lifecycle["totalOrders"] == 1
    assert lifecycle["lastOrderDate"] == "2026-09-30T12:00:00.000Z"
    # Nothing is sent as null: absent values have no key, an object with no values is absent itself.
    assert "person" not in sparse
    assert set(sparse["_sfmcsandbox"]["lifecycle"]) == {"subscriberKey", "stage", "optIn", "modifiedAt"}
    assert blank["person"] == {"name": {"firstName": "Cyrille"}}  # "" is not a value either


def test_null_struct_is_null_in_parquet_not_a_struct_of_nulls() -> None:
    rows = _parquet_rows(to_xdm(contacts_frame(), configured_mappings()["contacts"]))
    assert rows[1]["person"] is None
    schema = pq.read_schema(io.BytesIO(to_parquet_bytes(to_xdm(contacts_frame(), configured_mappings()["contacts"]))))
    assert str(schema.field("identityMap").type).startswith("map<")


def test_datetimes_are_int64_timestamp_millis_as_in_adobes_parquet_mapping() -> None:
    data = to_parquet_bytes(to_xdm(engagement_frame(), configured_mappings()["engagement"]))
    schema = pq.ParquetFile(io.BytesIO(data)).schema
    stamp = schema.column(schema.names.index("timestamp"))
    assert stamp.physical_type == "INT64" and stamp.converted_type == "TIMESTAMP_MILLIS"
    assert "isAdjustedToUTC=true" in str(stamp.logical_type) and "timeUnit=milliseconds" in str(stamp.logical_type)
    contacts = pq.ParquetFile(io.BytesIO(to_parquet_bytes(to_xdm(contacts_frame(), configured_mappings()["contacts"]))))
    nested = [c for c in contacts.schema if c.path.endswith("modifiedAt")]
    assert nested and all(c.converted_type == "TIMESTAMP_MILLIS" for c in nested)


@pytest.mark.parametrize("limit", [8_000, 12_000, 1_000_000])  # a file alone is ~4.5 KB
def test_a_frame_over_the_limit_becomes_several_files_in_row_order(limit: int) -> None:
    frame = to_xdm(pl.concat([engagement_frame(f"e{n}") for n in range(60)]), configured_mappings()["engagement"])
    files = to_parquet_files(frame, limit)
    assert all(len(f) <= limit for f in files)
    assert (len(files) == 1) == (len(to_parquet_bytes(frame)) <= limit)
    back = pl.concat([pl.read_parquet(io.BytesIO(f)) for f in files])
    assert back["_id"].to_list() == frame["_id"].to_list()


def test_a_single_row_over_the_limit_is_left_whole_for_the_client_to_refuse() -> None:
    frame = to_xdm(engagement_frame(), configured_mappings()["engagement"]).head(1)
    assert len(to_parquet_files(frame, 10)) == 1


def test_events_have_deterministic_ids_timestamps_and_event_types() -> None:
    mapping = configured_mappings()["engagement"]
    first, second = to_xdm(engagement_frame(), mapping), to_xdm(engagement_frame(), mapping)
    assert first["_id"].to_list() == second["_id"].to_list()
    expected = str(uuid.uuid5(XDM_ID_NAMESPACE, f"{mapping.dataset}\x1fe-0"))
    assert first["_id"][0] == expected
    assert first["_id"].n_unique() == first.height
    assert first["eventType"].to_list() == [
        "directMarketing.emailSent", "directMarketing.emailOpened", "directMarketing.emailClicked",
        "message.feedback", "directMarketing.emailUnsubscribed", "directMarketing.emailBounced",
    ]
    records = _validated("engagement")
    assert records[0]["timestamp"] == "2026-10-01T00:00:00.000Z"
    assert records[3]["_sfmcsandbox"]["engagement"]["sentiment"] == "negative"
    assert "sentiment" not in records[0]["_sfmcsandbox"]["engagement"]


@pytest.mark.parametrize("id_columns", [["a"], ["a", "b"]])
def test_bulk_ids_equal_python_uuid5(id_columns: list[str]) -> None:
    """The DuckDB SHA-1 path gives exactly `uuid.uuid5` for any text: multi-byte, NUL, separators, ints."""
    keys = ["e-0", "", "é✓", "a\x00b", "x\x1fy", "😀" * 40, " lead ", "123"]
    frame = pl.DataFrame({"a": keys, "b": list(range(len(keys)))})
    mapping = XdmMapping.model_validate({"dataset": "ds1", "xdm_class": "profile", "id_columns": id_columns})
    expected = [str(uuid.uuid5(XDM_ID_NAMESPACE, "\x1f".join(("ds1", *(str(v) for v in row)))))
                for row in frame.select(id_columns).iter_rows()]
    assert _record_ids(frame, mapping).to_list() == expected
    assert _record_ids(frame.clear(), mapping).to_list() == []


def test_activities_fill_web_and_commerce_only_where_they_apply() -> None:
    page_view, form, purchase, *_ = _validated("activities")
    assert page_view["web"] == {"webPageDetails": {"URL": "https://example.com/"}}
    assert "commerce" not in page_view and "web" not in form
    assert purchase["commerce"] == {"order": {"purchaseID": "O-1", "priceTotal": 99.9}}
    assert purchase["eventType"] == "commerce.purchases"


def test_unmapped_event_value_missing_column_and_null_key_are_errors() -> None:
    mapping = configured_mappings()["engagement"]
    with pytest.raises(XdmMappingError, match=r"values \['forward'\] have no eventType"):
        to_xdm(engagement_frame().with_columns(pl.lit("forward").alias("action")), mapping)
    with pytest.raises(XdmMappingError, match=r"\['link_url'\]"):
        to_xdm(engagement_frame().drop("link_url"), mapping)
    with pytest.raises(XdmMappingError, match="null key"):
        to_xdm(engagement_frame().with_columns(pl.lit(None, pl.String).alias("engagement_id")), mapping)


def test_mapping_rules() -> None:
    base = {"dataset": "d", "xdm_class": "experience_event", "timestamp": "event_at",
            "id_columns": ["engagement_id"]}
    with pytest.raises(ValidationError, match="only one identity may be primary"):
        XdmMapping.model_validate({**base, "identities": {"Email": {"column": "e", "primary": True},
                                                          "ECID": {"column": "x", "primary": True}}})
    with pytest.raises(ValidationError, match="is filled from"):
        XdmMapping.model_validate({**base, "fields": {"timestamp": "event_at"}})
    with pytest.raises(ValidationError, match="both a value and the parent"):
        XdmMapping.model_validate({**base, "fields": {"a.b": "x", "a.b.c": "y"}})
    with pytest.raises(ValidationError, match="needs `timestamp`"):
        XdmMapping.model_validate({**base, "timestamp": None})
    with pytest.raises(ValidationError, match="only exist on experience_event"):
        XdmMapping.model_validate({"dataset": "d", "xdm_class": "profile", "timestamp": "t"})
    with pytest.raises(ValidationError, match="extra"):
        XdmMapping.model_validate({**base, "feilds": {}})


@pytest.mark.parametrize("kind", ["contacts", "engagement", "activities"])
def test_mappings_round_trip_through_yaml(kind: str) -> None:
    mapping = configured_mappings()[kind]
    text = yaml.safe_dump({"aep": mapping.model_dump(mode="json", exclude_defaults=True)}, sort_keys=False)
    assert XdmMapping.model_validate(yaml.safe_load(text)["aep"]) == mapping


def test_column_lineage() -> None:
    lineage = column_lineage(configured_mappings()["contacts"])
    assert lineage["person.name.firstName"] == ["first_name"]
    assert lineage["identityMap.Email"] == ["email"]
    assert lineage["_id"] == ["contact_key"]
    assert lineage["_sfmcsandbox.lifecycle.lifetimeValue"] == ["lifetime_value"]



def test_every_key_column_enters_the_record_id() -> None:
    """A composite key: the same subscriber on two channels gets two `_id`s, each stable across runs."""
    from sfmc_assets.lib.experience_platform.xdm import XdmMapping, to_xdm

    mapping = XdmMapping(dataset="ds", xdm_class="experience_event", timestamp="at",
                         id_columns=["subscriber_key", "channel"], fields={"_t.p.channel": "channel"})
    frame = pl.DataFrame({"subscriber_key": ["S1", "S1"], "channel": ["Email", "SMS"],
                          "at": [dt.datetime(2026, 10, 2, tzinfo=dt.timezone.utc)] * 2})
    ids = to_xdm(frame, mapping)["_id"].to_list()
    assert len(set(ids)) == 2 and ids == to_xdm(frame, mapping)["_id"].to_list()
    assert ids[0] == str(uuid.uuid5(XDM_ID_NAMESPACE, "\x1f".join(("ds", "S1", "Email"))))

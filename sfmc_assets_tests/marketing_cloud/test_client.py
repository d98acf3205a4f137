"""The Marketing Cloud client against the sandbox, over HTTP: paging, filters, auth, faults, types."""

import datetime as dt
import time

import polars as pl
import pytest

from sfmc_assets.lib.config import load_config
from sfmc_assets.lib.extract import Window, extract_window, window_filter
from sfmc_assets.lib.lake import ParquetLake
from sfmc_assets.lib.marketing_cloud import (
    AuthenticationError,
    DataExtensionNotFoundError,
    MarketingCloudClient,
    MarketingCloudError,
    SchemaDriftError,
)
from sfmc_assets.lib.marketing_cloud.rowset import RowsetReader, discover_fields
from sfmc_assets.lib.marketing_cloud.types import PARSE_ERRORS
from sfmc_assets.sandboxes.marketing_cloud import Fault, MarketingCloudSandbox
from sfmc_assets_tests.conftest import FAST_RETRY, client_for

UTC = dt.timezone.utc
CONFIG = load_config()
CAMPAIGNS = CONFIG.data_extension("campaigns")
CONTACTS = CONFIG.data_extension("contacts")
DAY = Window.day("2026-10-03")
OFFSET = CONFIG.source.offset


def read(client: MarketingCloudClient, de=CAMPAIGNS, window: Window = DAY, **kw: object) -> pl.DataFrame:
    reader = RowsetReader(client, de.external_key, de.fields, filter=window_filter(de.delta_column, window, OFFSET),
                          **kw)  # type: ignore[arg-type]
    frames = list(reader.pages())
    return pl.concat(frames) if frames else pl.DataFrame()


def truth(sandbox: MarketingCloudSandbox, de=CAMPAIGNS, window: Window = DAY) -> pl.DataFrame:
    return sandbox.ground_truth(de.external_key, window.start, window.end)


def assert_same_rows(got: pl.DataFrame, expected: pl.DataFrame, key: str) -> None:
    got = got.drop(PARSE_ERRORS).sort(key)
    expected = expected.select(got.columns).sort(key)
    assert got.height == expected.height
    assert got.equals(expected.cast(got.schema)), (got.head(3), expected.head(3))


def test_paging_across_many_pages_equals_ground_truth(mc_sandbox: MarketingCloudSandbox) -> None:
    with client_for(mc_sandbox) as client:
        got = read(client, page_size=100, concurrency=4)
    expected = truth(mc_sandbox)
    assert expected.height > 1000  # many pages at 100 rows each
    assert_same_rows(got, expected, "EngagementID")
    assert mc_sandbox.stats()["rowset_token"] >= expected.height // 100


def test_one_token_serves_many_calls(mc_sandbox: MarketingCloudSandbox) -> None:
    with client_for(mc_sandbox) as client:
        read(client, page_size=500)
        read(client, window=Window.day("2026-10-04"), page_size=500)
        assert client.counters["token_requests"] == 1
    assert mc_sandbox.stats()["token"] == 1


def test_query_strings_encode_spaces_as_pct20(mc_sandbox: MarketingCloudSandbox) -> None:
    """The sandbox refuses `+` for a space in `$filter` (a strict server's reading); the client sends `%20`."""
    with client_for(mc_sandbox) as client:
        got = read(client, page_size=500)
        discover_fields(client, "Campaign_Engagement")
    assert got.height > 0
    queries = mc_sandbox.queries()
    first = next(q for q in queries if "$filter=" in q)
    assert "$filter=EventDate%20gte%20'" in first and "%20and%20EventDate%20lt%20'" in first
    assert "$orderBy=EngagementID%20asc" in first
    assert mc_sandbox.stats().get("query_plus", 0) == 0 and not any("+" in q for q in queries)


def test_window_outside_the_data_is_an_empty_typed_result(mc_sandbox: MarketingCloudSandbox) -> None:
    with client_for(mc_sandbox) as client:
        got = read(client, window=Window.day("2025-01-01"))
    assert got.height == 0


def test_day_boundaries_in_server_time_land_in_the_right_utc_day(mc_sandbox: MarketingCloudSandbox) -> None:
    """Every row of a UTC day, and only those, including rows exactly at 00:00 UTC (6 PM server time)."""
    days = [Window.day(f"2026-10-0{d}") for d in (2, 3, 4)]
    with client_for(mc_sandbox) as client:
        per_day = [read(client, de=CONTACTS, window=w) for w in days]
    for window, got in zip(days, per_day, strict=True):
        assert_same_rows(got, truth(mc_sandbox, CONTACTS, window), "SubscriberKey")
        stamps = got["ModifiedDate"]
        assert (stamps >= window.start).all() and (stamps < window.end).all()
    all_rows = pl.concat(per_day)["ModifiedDate"]
    # the tenant has rows exactly on both kinds of boundary: UTC midnight and server midnight (06:00 UTC)
    assert (all_rows.dt.time() == dt.time(0, 0)).any()
    assert (all_rows.dt.time() == dt.time(6, 0)).any()


def test_token_expiring_mid_read_is_renewed_and_the_page_replayed(mc_sandbox: MarketingCloudSandbox) -> None:
    mc_sandbox.set_faults([Fault(route="rowset", kind="expire_token", after=3)])
    with client_for(mc_sandbox) as client:
        got = read(client, page_size=200)
        # every in-flight page that met the 401 is replayed, but the token is renewed only once
        assert client.counters["token_replays"] >= 1
        assert client.counters["token_requests"] == 2
    assert_same_rows(got, truth(mc_sandbox), "EngagementID")


@pytest.mark.parametrize(
    "fault",
    [
        Fault(route="rowset", kind="status", status=429, retry_after=1, after=2, times=3),
        Fault(route="rowset", kind="status", status=500, after=1, times=4),
        Fault(route="rowset", kind="status", status=503, retry_after=0, after=1, times=3),
        Fault(route="rowset", kind="malformed", after=2, times=2),
        Fault(route="rowset", kind="truncate", after=2, times=2),
        Fault(route="rowset", kind="reset", after=2, times=2),
        Fault(route="token", kind="status", status=429, times=2),
    ],
    ids=lambda f: f"{f.route}-{f.kind}-{f.status or ''}",
)
def test_transient_faults_are_retried_to_the_exact_result(mc_sandbox: MarketingCloudSandbox, fault: Fault) -> None:
    mc_sandbox.set_faults([fault])
    with client_for(mc_sandbox) as client:
        got = read(client, page_size=300)
        assert client.counters["retries"] >= 1
    assert_same_rows(got, truth(mc_sandbox), "EngagementID")


def test_retry_after_is_honoured(mc_sandbox: MarketingCloudSandbox) -> None:
    mc_sandbox.set_faults([Fault(route="rowset", kind="status", status=429, retry_after=1, times=2)])
    started = time.monotonic()
    with client_for(mc_sandbox) as client:
        read(client, page_size=2500)
    assert time.monotonic() - started >= 2.0


def test_a_storm_that_does_not_end_fails_clearly(mc_sandbox: MarketingCloudSandbox) -> None:
    mc_sandbox.set_faults([Fault(route="rowset", kind="status", status=503, retry_after=0, times=None)])
    with client_for(mc_sandbox) as client, pytest.raises(MarketingCloudError) as info:
        read(client)
    message = str(info.value)
    assert "gave up after 6 attempt(s)" in message
    assert "data extension: Campaign_Engagement" in message
    assert "request: GET data/v1/customobjectdata/key/Campaign_Engagement/rowset?" in message
    assert "HTTP 503" in message


def test_timeouts_are_retried(mc_sandbox: MarketingCloudSandbox) -> None:
    mc_sandbox.set_faults([Fault(route="rowset", kind="latency", latency_ms=1500, times=1)])
    with client_for(mc_sandbox, timeout=(2.0, 0.5)) as client:
        got = read(client)
        assert client.counters["retries"] == 1
    assert_same_rows(got, truth(mc_sandbox), "EngagementID")


def test_bad_credentials_fail_fast_without_retry(mc_sandbox: MarketingCloudSandbox) -> None:
    started = time.monotonic()
    client = MarketingCloudClient(mc_sandbox.url, mc_sandbox.client_id, "wrong-secret", retry=FAST_RETRY)
    with client, pytest.raises(AuthenticationError) as info:
        read(client)
    assert time.monotonic() - started < 2.0
    assert mc_sandbox.stats()["token"] == 1
    assert "Client authentication failed" in str(info.value)
    assert "wrong-secret" not in str(info.value)


def test_unknown_client_id_is_named(mc_sandbox: MarketingCloudSandbox) -> None:
    client = MarketingCloudClient(mc_sandbox.url, "nobody", mc_sandbox.client_secret, retry=FAST_RETRY)
    with client, pytest.raises(AuthenticationError, match=r"'nobody'.*Invalid client ID"):
        read(client)


def test_wrong_base_uri_fails_clearly() -> None:
    client = MarketingCloudClient("http://127.0.0.1:9/", "id", "secret",
                                  retry=FAST_RETRY.__class__(max_attempts=2, backoff_initial_s=0.01, backoff_max_s=0.01))
    with client, pytest.raises(MarketingCloudError, match=r"gave up after 2 attempt\(s\).*connection failed"):
        read(client)


def test_unknown_key_is_named(mc_sandbox: MarketingCloudSandbox) -> None:
    with client_for(mc_sandbox) as client:
        with pytest.raises(DataExtensionNotFoundError, match="No_Such_DE"):
            discover_fields(client, "No_Such_DE")
        with pytest.raises(DataExtensionNotFoundError, match="data extension: No_Such_DE"):
            list(RowsetReader(client, "No_Such_DE", CAMPAIGNS.fields).pages())


def test_field_metadata_matches_the_configuration(mc_sandbox: MarketingCloudSandbox) -> None:
    with client_for(mc_sandbox) as client:
        for de in CONFIG.data_extensions:
            served = discover_fields(client, de.external_key)
            assert [(f.name, f.type, f.is_primary_key) for f in served] == [
                (f.name, f.type, f.is_primary_key) for f in de.fields or ()
            ]


def _extract(client: MarketingCloudClient, lake: ParquetLake, de=CAMPAIGNS, window: Window = DAY, **kw: object):
    return extract_window(client, de, window, lambda s: lake.writer(["t", de.name], "p", s),
                          utc_offset=OFFSET, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("mutation", ["insert_before", "delete", "update"])
def test_rows_changing_mid_read_give_the_exact_final_state(
    fresh_mc_sandbox: MarketingCloudSandbox, tmp_path, mutation: str
) -> None:
    fresh_mc_sandbox.set_faults([Fault(route="rowset", kind="mutate", mutation=mutation, n=3, after=2,
                                       key="Campaign_Engagement")])
    lake = ParquetLake(str(tmp_path))
    with client_for(fresh_mc_sandbox) as client:
        result = _extract(client, lake, page_size=50, concurrency=1)
    got = lake.read(["t", "campaigns"], "p")
    assert got["EngagementID"].is_unique().all()
    if mutation == "update":
        # An in-place update keeps every offset, so the first read is consistent: every row once, the
        # rows changed after they were read keep the values they had when read.
        assert result.attempts == 1
        assert set(got["EngagementID"]) == set(truth(fresh_mc_sandbox)["EngagementID"])
    else:
        assert result.attempts == 2
        assert_same_rows(got, truth(fresh_mc_sandbox), "EngagementID")


def test_schema_drift_names_the_column(fresh_mc_sandbox: MarketingCloudSandbox, tmp_path) -> None:
    lake = ParquetLake(str(tmp_path))
    fresh_mc_sandbox.alter_schema("Campaign_Engagement", add={"Score": "Number"}, retype={"Channel": "Number"})
    with client_for(fresh_mc_sandbox) as client, pytest.raises(SchemaDriftError) as info:
        _extract(client, lake)
    assert "column 'Score' (Number) was added" in str(info.value)
    assert "column 'Channel' changed type from Text to Number" in str(info.value)
    assert not lake.exists(["t", "campaigns"], "p")  # nothing written


def test_failed_read_leaves_no_partial_partition(mc_sandbox: MarketingCloudSandbox, tmp_path) -> None:
    lake = ParquetLake(str(tmp_path))
    mc_sandbox.set_faults([Fault(route="rowset", kind="status", status=500, after=3, times=None)])
    with client_for(mc_sandbox) as client, pytest.raises(MarketingCloudError):
        _extract(client, lake, page_size=100)
    assert list(tmp_path.rglob("*.parquet")) == [] and list(tmp_path.rglob("*.tmp")) == []


def test_soap_access_shares_the_token_and_names_the_soap_host(mc_sandbox: MarketingCloudSandbox) -> None:
    with client_for(mc_sandbox) as client:
        first = client.soap_access()
        assert first.soap_base == mc_sandbox.url  # `soap_instance_url` of the token response, ending with `/`
        assert client.soap_access().token == first.token  # cached: no second token request
        assert client.counters["token_requests"] == 1
        renewed = client.soap_access(stale=first.token)  # the SOAP endpoint refused it: renewed
        assert renewed.token != first.token and client.counters["token_requests"] == 2
        assert first.token not in repr(first)

"""The Experience Platform client against a real sandbox over HTTP: auth, headers, publish, replay, faults.

One sandbox per module; batches accumulate, so each test publishes under its own label and checks its own
batch ids (or the sandbox's per-route request counters, as deltas).
"""

import time
from collections.abc import Iterator
from typing import Any

import polars as pl
import pytest
import requests
from requests.adapters import HTTPAdapter

from sfmc_assets.lib.experience_platform import (
    LABEL_TAG,
    AccessDeniedError,
    AuthenticationError,
    BatchCreateError,
    BatchFailedError,
    BatchStuckError,
    DatasetNotFoundError,
    ExperiencePlatformClient,
    ExperiencePlatformError,
    FileTooLargeError,
    RetrySettings,
    to_parquet_bytes,
    to_xdm,
)
from sfmc_assets.sandboxes.experience_platform import ExperiencePlatformSandbox, Fault
from sfmc_assets_tests.experience_platform.support import (
    FAST_WAIT,
    activities_frame,
    configured_mappings,
    contacts_frame,
    engagement_frame,
    make_client,
    unique_label,
)

MAPPINGS = configured_mappings()
CONTACTS = MAPPINGS["contacts"].dataset
ENGAGEMENT = MAPPINGS["engagement"].dataset


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExperiencePlatformSandbox]:
    sb = ExperiencePlatformSandbox(tmp_path_factory.mktemp("aep"), processing_delay_s=0.05).start()
    yield sb
    sb.stop()


@pytest.fixture(autouse=True)
def _clean(sandbox: ExperiencePlatformSandbox) -> Iterator[None]:
    limit = sandbox.max_file_bytes
    sandbox.clear_faults()
    yield
    sandbox.clear_faults()
    sandbox.max_file_bytes = limit


@pytest.fixture
def client(sandbox: ExperiencePlatformSandbox) -> Iterator[ExperiencePlatformClient]:
    with make_client(sandbox) as c:
        yield c


def _contacts_parquet(prefix: str = "c") -> bytes:
    return to_parquet_bytes(to_xdm(contacts_frame(prefix), MAPPINGS["contacts"]))


class _Delta:
    """Per-route request counts of the shared sandbox since construction."""

    def __init__(self, sandbox: ExperiencePlatformSandbox) -> None:
        self.sandbox = sandbox
        self.before = sandbox.stats()

    def __getitem__(self, route: str) -> int:
        return self.sandbox.stats().get(route, 0) - self.before.get(route, 0)


def _batches_with(sandbox: ExperiencePlatformSandbox, dataset: str, label: str) -> list[dict[str, Any]]:
    return [b for b in sandbox.batches(dataset) if label in (b["tags"].get(LABEL_TAG) or [])]


# -- authentication and headers ---------------------------------------------------------------------


def test_one_token_for_many_platform_calls(sandbox: ExperiencePlatformSandbox,
                                           client: ExperiencePlatformClient) -> None:
    delta = _Delta(sandbox)
    for _ in range(3):
        client.get_dataset(CONTACTS)
    client.publish(CONTACTS, _contacts_parquet("tok"), label=unique_label("tok"), **FAST_WAIT)
    assert delta["ims"] == 1
    assert client.counters["token_requests"] == 1
    assert delta["catalog_dataset"] == 4 and delta["create_batch"] == 1


def test_token_is_renewed_ahead_of_its_expiry(tmp_path: Any) -> None:
    # IMS reports a 2 s lifetime here: the client renews after half of it rather than waiting for a 401.
    with ExperiencePlatformSandbox(tmp_path / "short", token_ttl_seconds=3.0).start() as sb, \
            make_client(sb) as c:
        c.get_dataset(CONTACTS)
        c.get_dataset(CONTACTS)
        time.sleep(1.1)
        c.get_dataset(CONTACTS)
        assert sb.stats()["ims"] == 2
        assert c.counters["token_renewals_after_401"] == 0


def test_every_platform_call_carries_the_gateway_headers(sandbox: ExperiencePlatformSandbox,
                                                         client: ExperiencePlatformClient) -> None:
    seen: list[requests.PreparedRequest] = []
    client.session.http.hooks["response"].append(lambda r, *a, **k: seen.append(r.request))
    client.publish(CONTACTS, _contacts_parquet("hdr"), label=unique_label("hdr"), **FAST_WAIT)
    info = sandbox.discovery()
    ims = [r for r in seen if r.path_url.startswith("/ims/")]
    platform = [r for r in seen if r.path_url.startswith("/data/")]
    assert len(ims) == 1 and len(platform) >= 5
    assert ims[0].headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert "Authorization" not in ims[0].headers
    assert "grant_type=client_credentials" in str(ims[0].body)
    for req in platform:
        assert req.headers["Authorization"].startswith("Bearer ")
        assert req.headers["x-api-key"] == info["client_id"]
        assert req.headers["x-gw-ims-org-id"] == info["org_id"]
        assert req.headers["x-sandbox-name"] == info["sandbox_name"]
    upload = next(r for r in platform if r.method == "PUT")
    assert upload.headers["Content-Type"] == "application/octet-stream"
    create = next(r for r in platform if r.method == "POST" and r.path_url.endswith("/batches"))
    assert create.headers["Content-Type"] == "application/json"
    # COMPLETE has no body, but the gateway answers a POST without a Content-Type with 400.
    complete = next(r for r in platform if r.method == "POST" and r.path_url.endswith("?action=COMPLETE"))
    assert complete.headers["Content-Type"] == "application/json" and not complete.body
    assert not any("+" in r.url for r in seen)


def test_secret_is_never_shown(sandbox: ExperiencePlatformSandbox) -> None:
    secret = sandbox.discovery()["client_secret"]
    good = make_client(sandbox)
    assert secret not in repr(good) and "***" in repr(good)
    bad = make_client(sandbox, client_secret=secret + "x")
    with pytest.raises(AuthenticationError, match="invalid client_secret") as info:
        bad.get_dataset(CONTACTS)
    assert secret not in str(info.value) and "client id 'sandbox-aep-client'" in str(info.value)


def test_wrong_sandbox_name_is_explained(sandbox: ExperiencePlatformSandbox) -> None:
    delta = _Delta(sandbox)
    with make_client(sandbox, sandbox_name="dev") as c, pytest.raises(AccessDeniedError) as info:
        c.publish(CONTACTS, _contacts_parquet(), label=unique_label("sbx"), **FAST_WAIT)
    message = str(info.value)
    assert "sandbox 'dev'" in message and "lowercase name" in message and "code 403025" in message
    assert delta["create_batch"] == 0
    with pytest.raises(ValueError, match="lowercase name"):
        make_client(sandbox, sandbox_name="Prod Sandbox")


def test_token_expiring_mid_run_is_renewed_once_and_the_call_replayed(sandbox: ExperiencePlatformSandbox,
                                                                      client: ExperiencePlatformClient) -> None:
    sandbox.set_faults([Fault(kind="expire_tokens", route="upload", times=1),
                        Fault(kind="expire_tokens", route="catalog_batch", after=2, times=1)])
    delta = _Delta(sandbox)
    result = client.publish(CONTACTS, _contacts_parquet("exp"), label=unique_label("exp"), **FAST_WAIT)
    assert result.status == "success"
    assert delta["ims"] == 3 and client.counters["token_renewals_after_401"] == 2
    assert delta["upload"] == 2


def test_token_expiring_on_create_does_not_duplicate_the_batch(sandbox: ExperiencePlatformSandbox,
                                                               client: ExperiencePlatformClient) -> None:
    sandbox.set_faults([Fault(kind="expire_tokens", route="create_batch", times=1)])
    label = unique_label("exp-create")
    result = client.publish(CONTACTS, _contacts_parquet("expc"), label=label, **FAST_WAIT)
    assert [b["id"] for b in _batches_with(sandbox, CONTACTS, label)] == [result.batch_id]


# -- publishing -------------------------------------------------------------------------------------


def test_publish_reports_metrics_and_ingests_the_records(sandbox: ExperiencePlatformSandbox,
                                                         client: ExperiencePlatformClient) -> None:
    frame = contacts_frame("pub")
    xdm = to_xdm(frame, MAPPINGS["contacts"])
    data = to_parquet_bytes(xdm)
    label = unique_label("contacts")
    result = client.publish(CONTACTS, data, label=label, **FAST_WAIT)
    assert result.status == "success" and result.dataset_id == CONTACTS and result.label == label
    assert (result.records_in, result.records_out, result.records_failed) == (3, 3, 0)
    assert result.file_bytes == len(data) and result.duration_s > 0 and result.predecessors == ()
    assert result.as_metadata()["batch_id"] == result.batch_id

    batch = next(b for b in sandbox.batches(CONTACTS) if b["id"] == result.batch_id)
    assert batch["live"] and batch["externalId"] == result.external_id
    records = {r["_id"]: r for r in sandbox.live_records(CONTACTS) if r["_id"] in set(xdm["_id"])}
    assert len(records) == 3
    first, sparse, _ = (records[i] for i in xdm["_id"])
    assert first["person"]["name"] == {"firstName": "Ann", "lastName": "Lee"}
    assert first["identityMap"]["Email"] == [{"id": "ann@example.com", "primary": True}]
    assert first["_sfmcsandbox"]["lifecycle"]["lastOrderDate"] == "2026-09-30T12:00:00.000Z"
    assert "person" not in sparse and "totalOrders" not in sparse["_sfmcsandbox"]["lifecycle"]
    assert not any(v is None for v in _leaves(sparse))


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def test_publish_events_with_deterministic_ids(sandbox: ExperiencePlatformSandbox,
                                               client: ExperiencePlatformClient) -> None:
    for kind, frame in (("engagement", engagement_frame("pe")), ("activities", activities_frame("pa"))):
        mapping = MAPPINGS[kind]
        xdm = to_xdm(frame, mapping)
        result = client.publish(mapping.dataset, to_parquet_bytes(xdm), label=unique_label(kind), **FAST_WAIT)
        assert result.records_out == frame.height
        ingested = {r["_id"]: r for r in sandbox.live_records(mapping.dataset)}
        for row in xdm.select("_id", "eventType").iter_rows():
            assert ingested[row[0]]["eventType"] == row[1]


def test_republishing_a_label_replaces_the_previous_batch(sandbox: ExperiencePlatformSandbox,
                                                          client: ExperiencePlatformClient) -> None:
    label = unique_label("replay")
    data = _contacts_parquet("rep")
    first = client.publish(CONTACTS, data, label=label, predecessors=[], **FAST_WAIT)
    assert [b["id"] for b in client.find_live_batches(CONTACTS, label)] == [first.batch_id]

    second = client.publish(CONTACTS, data, label=label, predecessors=[first.batch_id], **FAST_WAIT)
    assert second.predecessors == (first.batch_id,)
    # Without explicit predecessors the live batch of the label is found and replaced.
    third = client.publish(CONTACTS, data, label=label, **FAST_WAIT)
    assert third.predecessors == (second.batch_id,)

    batches = _batches_with(sandbox, CONTACTS, label)
    assert [b["id"] for b in batches if b["live"]] == [third.batch_id]
    assert {b["id"]: b["status"] for b in batches} == {
        first.batch_id: "inactive", second.batch_id: "inactive", third.batch_id: "success"}
    keys = {"rep-1", "rep-2", "rep-3"}
    live = [r for r in sandbox.live_records(CONTACTS)
            if r["_sfmcsandbox"]["lifecycle"]["subscriberKey"] in keys]
    assert len(live) == 3  # one copy of each record, not three


def test_republishing_a_day_behind_thousands_of_newer_batches_replaces_its_batch(tmp_path: Any) -> None:
    """A day's live batch is found by Catalog's filters however old it is (listing the newest 2,000 would
    miss it here, and the re-published day would end with two live batches)."""
    with ExperiencePlatformSandbox(tmp_path / "aep", processing_delay_s=0.05) as sb, make_client(sb) as c:
        label = "contacts/2026-10-01"
        data = _contacts_parquet("old")
        first = c.publish(CONTACTS, data, label=label, **FAST_WAIT)
        sb.seed_batches(CONTACTS, [{LABEL_TAG: [f"contacts/2026-{n // 28 + 1:02d}-{n % 28 + 1:02d}x"]}
                                   for n in range(2_500)])
        delta = _Delta(sb)
        second = c.publish(CONTACTS, data, label=label, **FAST_WAIT)
        assert second.predecessors == (first.batch_id,)
        live = [b["id"] for b in _batches_with(sb, CONTACTS, label) if b["live"]]
        assert live == [second.batch_id]
        assert len([b for b in sb.batches(CONTACTS) if b["live"]]) == 2_501
        # Found by filter: one list call per status looked at, not 26 pages of the newest batches.
        assert delta["catalog_batch"] < 15


# -- failures ---------------------------------------------------------------------------------------


def test_failed_batch_raises_with_platform_codes_and_keeps_the_old_batch_live(
        sandbox: ExperiencePlatformSandbox, client: ExperiencePlatformClient) -> None:
    label = unique_label("fail")
    old = client.publish(CONTACTS, _contacts_parquet("fl"), label=label, **FAST_WAIT)
    sandbox.set_faults([Fault(kind="fail_batch", error_code="INGEST-1555-400",
                              message="A required field is either missing or has a value of null.")])
    with pytest.raises(BatchFailedError) as info:
        client.publish(CONTACTS, _contacts_parquet("fl"), label=label, **FAST_WAIT)
    err = info.value
    assert err.error_codes == ["INGEST-1555-400"] and err.final_status == "failed"
    assert "INGEST-1555-400" in str(err) and f"dataset: {CONTACTS}" in str(err) and "batch: " in str(err)
    assert [b["id"] for b in _batches_with(sandbox, CONTACTS, label) if b["live"]] == [old.batch_id]


def test_invalid_records_fail_the_batch_with_the_validation_code(client: ExperiencePlatformClient) -> None:
    bad = MAPPINGS["contacts"].model_copy(
        update={"fields": {**MAPPINGS["contacts"].fields, "_sfmcsandbox.lifecycle.phone": "phone"}})
    data = to_parquet_bytes(to_xdm(contacts_frame("inv"), bad))
    with pytest.raises(BatchFailedError, match="INGEST-1401-400") as info:
        client.publish(CONTACTS, data, label=unique_label("invalid"), **FAST_WAIT)
    # Error diagnostics are on: a summary code plus one code per kind of row error, with counts.
    assert info.value.error_codes == ["INGEST-1212-400", "INGEST-1401-400"]
    assert info.value.errors[1]["recordCount"] == 1  # only the row with a phone has the extra key
    assert info.value.metrics["failedRecordCount"] == 1


def test_stuck_batch_is_aborted_at_the_deadline(sandbox: ExperiencePlatformSandbox,
                                                client: ExperiencePlatformClient) -> None:
    sandbox.set_faults([Fault(kind="stuck_processing")])
    label = unique_label("stuck")
    data = _contacts_parquet("st")  # before the clock: the first XDM conversion of a process loads DuckDB
    started = time.monotonic()
    with pytest.raises(BatchStuckError, match=r"still processing after .*aborted") as info:
        client.publish(CONTACTS, data, label=label, deadline_s=0.5, poll_initial_s=0.05, poll_max_s=0.1)
    assert 0.5 <= time.monotonic() - started < 3
    assert info.value.aborted and info.value.batch_id
    assert [b["status"] for b in _batches_with(sandbox, CONTACTS, label)] == ["aborted"]


def test_transient_errors_on_upload_and_complete_are_retried(sandbox: ExperiencePlatformSandbox,
                                                             client: ExperiencePlatformClient) -> None:
    sandbox.set_faults([Fault(route="upload", status=503, times=2),
                        Fault(route="complete", status=429, times=1),
                        Fault(route="catalog_batch", status=500, after=1, times=1)])
    delta = _Delta(sandbox)
    label = unique_label("transient")
    result = client.publish(CONTACTS, _contacts_parquet("tr"), label=label, **FAST_WAIT)
    assert result.status == "success" and result.records_out == 3
    assert delta["upload"] == 3 and delta["complete"] == 2 and delta["create_batch"] == 1
    assert client.counters["retries"] == 4
    assert len(_batches_with(sandbox, CONTACTS, label)) == 1


def test_retry_after_is_honoured(sandbox: ExperiencePlatformSandbox) -> None:
    sandbox.set_faults([Fault(route="upload", status=429, retry_after=1, times=1)])
    retry = RetrySettings(max_attempts=3, max_total_s=10, backoff_initial_s=0.01, backoff_max_s=0.05,
                          retry_after_cap_s=5)
    with make_client(sandbox, retry=retry) as c:
        started = time.monotonic()
        c.publish(CONTACTS, _contacts_parquet("ra"), label=unique_label("retry-after"), **FAST_WAIT)
        assert time.monotonic() - started >= 1.0


def test_persistent_server_errors_give_up_and_abort_the_batch(sandbox: ExperiencePlatformSandbox,
                                                              client: ExperiencePlatformClient) -> None:
    sandbox.set_faults([Fault(route="complete", status=502)])
    label = unique_label("giveup")
    with pytest.raises(ExperiencePlatformError, match=r"gave up after 4 attempt\(s\).*batch: ") as info:
        client.publish(CONTACTS, _contacts_parquet("gu"), label=label, **FAST_WAIT)
    assert "HTTP 502" in str(info.value)
    assert [b["status"] for b in _batches_with(sandbox, CONTACTS, label)] == ["aborted"]


def test_server_error_on_create_does_not_create_a_second_batch(sandbox: ExperiencePlatformSandbox,
                                                               client: ExperiencePlatformClient) -> None:
    sandbox.set_faults([Fault(route="create_batch", status=503, times=1)])
    delta = _Delta(sandbox)
    label = unique_label("create5xx")
    result = client.publish(CONTACTS, _contacts_parquet("c5"), label=label, **FAST_WAIT)
    assert delta["create_batch"] == 2  # refused once, looked up (nothing there), created once
    assert [b["id"] for b in _batches_with(sandbox, CONTACTS, label)] == [result.batch_id]


def test_persistent_create_failure_is_a_clear_error_and_leaves_nothing(
        sandbox: ExperiencePlatformSandbox, client: ExperiencePlatformClient) -> None:
    sandbox.set_faults([Fault(route="create_batch", status=500)])
    before = len(sandbox.batches(CONTACTS))
    with pytest.raises(BatchCreateError, match="none was left behind") as info:
        client.publish(CONTACTS, _contacts_parquet("cf"), label=unique_label("createfail"), **FAST_WAIT)
    assert info.value.status == 500 and info.value.dataset == CONTACTS
    assert len(sandbox.batches(CONTACTS)) == before


class _LoseFirstCreateAnswer(HTTPAdapter):
    """Delivers the first POST /batches to the server, then drops its answer: the batch exists, we don't know."""

    lost = 0

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        response = super().send(request, *args, **kwargs)
        if request.method == "POST" and (request.path_url or "").endswith("/batches") and not self.lost:
            self.lost += 1
            raise requests.ConnectionError("connection reset after the request was sent")
        return response


def test_lost_create_answer_adopts_the_created_batch(sandbox: ExperiencePlatformSandbox,
                                                     client: ExperiencePlatformClient) -> None:
    adapter = _LoseFirstCreateAnswer()
    client.session.http.mount("http://", adapter)
    delta = _Delta(sandbox)
    label = unique_label("lost")
    result = client.publish(CONTACTS, _contacts_parquet("lo"), label=label, **FAST_WAIT)
    assert adapter.lost == 1 and delta["create_batch"] == 1
    assert client.counters["create_batch_recovered"] == 1
    assert [(b["id"], b["status"]) for b in _batches_with(sandbox, CONTACTS, label)] == [
        (result.batch_id, "success")]


def test_file_over_the_limit_is_refused_before_any_batch(sandbox: ExperiencePlatformSandbox) -> None:
    data = _contacts_parquet("big")
    delta = _Delta(sandbox)
    with make_client(sandbox, max_file_bytes=len(data) - 1) as c:
        with pytest.raises(FileTooLargeError, match="small-file upload limit"):
            c.publish(CONTACTS, data, label=unique_label("big"), **FAST_WAIT)
        with pytest.raises(FileTooLargeError, match=f"{len(data)} bytes"):
            c.upload_file("some-batch", CONTACTS, "big.parquet", data)
    assert delta["create_batch"] == 0 and delta["upload"] == 0


def test_several_files_make_one_batch_and_one_replaceable_day(sandbox: ExperiencePlatformSandbox,
                                                                 client: ExperiencePlatformClient) -> None:
    label = unique_label("multi")
    files = [_contacts_parquet(f"m{n}") for n in range(3)]
    result = client.publish(CONTACTS, files, label=label, **FAST_WAIT)
    assert (result.files, result.file_bytes, result.records_out) == (3, sum(map(len, files)), 9)
    [batch] = _batches_with(sandbox, CONTACTS, label)
    stem = label.replace("/", "_")
    assert batch["files"] == {f"{stem}/part-{n:05d}.parquet": len(files[n]) for n in range(3)}
    again = client.publish(CONTACTS, files[:1], label=label, **FAST_WAIT)
    assert again.predecessors == (result.batch_id,) and again.files == 1
    assert [b["id"] for b in _batches_with(sandbox, CONTACTS, label) if b["live"]] == [again.batch_id]


def test_more_files_than_a_batch_takes_are_refused_before_any_batch(sandbox: ExperiencePlatformSandbox,
                                                                    client: ExperiencePlatformClient) -> None:
    delta = _Delta(sandbox)
    with pytest.raises(FileTooLargeError, match="1501 file"):
        client.publish(CONTACTS, [b"x"] * 1_501, label=unique_label("many"), **FAST_WAIT)
    with pytest.raises(ValueError, match="empty file"):
        client.publish(CONTACTS, [b"x", b""], label=unique_label("hole"), **FAST_WAIT)
    assert delta["create_batch"] == 0 and delta["catalog_dataset"] == 0


def test_file_refused_by_platform_as_too_large_aborts_the_batch(sandbox: ExperiencePlatformSandbox,
                                                               client: ExperiencePlatformClient) -> None:
    data = _contacts_parquet("big2")
    sandbox.max_file_bytes = len(data) - 1
    label = unique_label("big413")
    with pytest.raises(FileTooLargeError, match="HTTP 413") as info:
        client.publish(CONTACTS, data, label=label, **FAST_WAIT)
    assert info.value.batch_id
    assert [b["status"] for b in _batches_with(sandbox, CONTACTS, label)] == ["aborted"]


def test_missing_dataset_is_named(sandbox: ExperiencePlatformSandbox, client: ExperiencePlatformClient) -> None:
    delta = _Delta(sandbox)
    missing = "000000000000000000000bad"
    with pytest.raises(DatasetNotFoundError, match=f"dataset: {missing}"):
        client.publish(missing, _contacts_parquet(), label=unique_label("missing"), **FAST_WAIT)
    with pytest.raises(DatasetNotFoundError, match=f"Dataset {missing} does not exist"):
        client.create_batch(missing)
    assert delta["create_batch"] == 1  # the direct create only: publish checked the dataset first


def test_get_dataset_and_find_live_batches(client: ExperiencePlatformClient) -> None:
    dataset = client.get_dataset(ENGAGEMENT)
    assert dataset["id"] == ENGAGEMENT and dataset["name"] == "SFMC Campaign Engagement"
    assert client.find_live_batches(ENGAGEMENT, unique_label("nothing")) == []


def test_publish_of_an_empty_frame_is_refused_or_empty(client: ExperiencePlatformClient) -> None:
    with pytest.raises(ValueError, match="empty file"):
        client.publish(CONTACTS, b"", label=unique_label("empty"), **FAST_WAIT)
    empty = to_parquet_bytes(to_xdm(contacts_frame().clear(), MAPPINGS["contacts"]))
    result = client.publish(CONTACTS, empty, label=unique_label("zero-rows"), **FAST_WAIT)
    assert (result.records_in, result.records_out) == (0, 0)
    assert isinstance(pl.read_parquet(empty), pl.DataFrame)

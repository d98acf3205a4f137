"""The Experience Platform sandbox driven by code nobody here wrote: Adobe's community client `aepp` (0.6.0).

aepp is configured as a user configures it for production (org, client id, secret, scopes, sandbox), with
its two hosts pointed at the local sandbox: `aepp.config.endpoints["global"]` for the Platform gateway and
the token endpoint of its configuration object for IMS. Everything else is aepp's own code: its token
request, its headers (`Content-Type: application/json` on every call), its Catalog listings and what it
reads from the objects (`classification.dataBehavior`, `tags`, `sandboxId`, `acp_successor`...), its batch
calls. Where aepp and the sandbox disagree the sandbox is fixed, unless aepp is wrong about the real API:
its `replayBatch` sends `PATCH /batches`, which neither batch-ingestion.yaml nor the API guide has (a replay
is `POST /batches` with a `replay` object, which aepp's `createBatch(replay=...)` sends), so the sandbox
answers it as an unknown route.
"""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aepp import catalog, config, configs, ingestion

from sfmc_assets.lib.experience_platform import to_parquet_bytes, to_xdm
from sfmc_assets.sandboxes.experience_platform import ExperiencePlatformSandbox
from sfmc_assets_tests.experience_platform.support import configured_mappings, contacts_frame


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[ExperiencePlatformSandbox]:
    with ExperiencePlatformSandbox(tmp_path / "aep", processing_delay_s=0.05) as sb:
        yield sb


@pytest.fixture
def aepp_config(sandbox: ExperiencePlatformSandbox) -> Iterator[configs.ConnectObject]:
    """aepp's configuration for this org, its hosts redirected to the sandbox.

    aepp keeps its configuration in module-level dicts; they are put back as they were afterwards.
    """
    saved = [(d, dict(d)) for d in (config.config_object, config.header, config.endpoints)]
    info = sandbox.discovery()
    connection = configs.configure(org_id=info["org_id"], client_id=info["client_id"], secret=info["client_secret"],
                                   scopes=info["scopes"], sandbox=info["sandbox_name"], connectInstance=True)
    config.endpoints["global"] = info["platform_url"]
    connection.getConfigObject().update(imsEndpoint=info["ims_url"],
                                        oauthTokenEndpointV2=f"{info['ims_url']}/ims/token/v3")
    yield connection
    for live, before in saved:
        live.clear()
        live.update(before)


def _wait(cat: catalog.Catalog, batch_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        batch = cat.getBatch(batch_id)[batch_id]
        if batch["status"] not in ("loading", "processing") or time.monotonic() > deadline:
            return batch
        time.sleep(0.05)


def _event(n: int) -> dict[str, Any]:
    return {"_id": f"aepp-{n}", "timestamp": f"2026-10-01T10:00:0{n}Z", "eventType": "directMarketing.emailSent",
            "identityMap": {"SFMCSubscriberKey": [{"id": f"SK{n}", "primary": True}]},
            "_sfmcsandbox": {"engagement": {"engagementId": f"E{n}", "campaignId": "C1", "action": "send"}}}


def test_aepp_lists_the_datasets_as_catalog_serves_them(sandbox: ExperiencePlatformSandbox,
                                                       aepp_config: configs.ConnectObject) -> None:
    datasets = sandbox.discovery()["datasets"]
    cat = catalog.Catalog(config=aepp_config)
    listed = cat.getDataSets()
    assert set(listed) == set(datasets.values())
    infos = cat.getDatasetsInfos().set_index("id")
    assert infos.loc[datasets["engagement"], "dataBehavior"] == "time-series"
    assert infos.loc[datasets["contacts"], "dataBehavior"] == "record"
    assert bool(infos.loc[datasets["contacts"], "profileEnabled"]) is True
    assert infos.loc[datasets["contacts"], "fileFormat"] == "parquet"
    assert cat.data.table_names["SFMC Contacts"] == ["sfmc_contacts"]  # read from tags["adobe/pqs/table"]
    assert sandbox.stats()["ims"] == 1  # aepp's own token request, form-encoded, against the sandbox's IMS


def test_aepp_json_batch_replay_and_active_batch(sandbox: ExperiencePlatformSandbox,
                                                 aepp_config: configs.ConnectObject) -> None:
    dataset = sandbox.discovery()["datasets"]["engagement"]
    cat, ing = catalog.Catalog(config=aepp_config), ingestion.DataIngestion(config=aepp_config)
    first = ing.createBatch(datasetId=dataset, format="json", multiline=True, enableDiagnostic=True)
    assert first["status"] == "loading"
    ing.uploadSmallFile(batchId=first["id"], datasetId=dataset, filePath="events.json",
                        data=[_event(1), _event(2)])
    ing.uploadSmallFileFinish(batchId=first["id"])
    done = _wait(cat, first["id"])
    assert done["status"] == "success" and done["recordCount"] == 2 and done["metrics"]["outputRecordCount"] == 2
    # A replay as the API guide describes it (POST /batches with `replay`), through aepp's createBatch.
    second = ing.createBatch(datasetId=dataset, format="json", multiline=True,
                             replay={"predecessors": [f"${first['id']}"], "reason": "replace"})
    ing.uploadSmallFile(batchId=second["id"], datasetId=dataset, filePath="events.json", data=[_event(3)])
    ing.uploadSmallFileFinish(batchId=second["id"])
    assert _wait(cat, second["id"])["status"] == "success"
    assert cat.getBatch(first["id"])[first["id"]]["status"] == "inactive"
    assert cat.findActiveBatch(first["id"]) == second["id"]  # follows the acp_successor tag
    live = [r["_id"] for r in sandbox.live_records(dataset)]
    assert live == ["aepp-3"]
    listed = cat.getBatches(dataSet=dataset, status="success", orderBy="desc:created")
    assert list(listed) == [second["id"]]
    # aepp's replayBatch sends PATCH /batches, which the real API does not have: refused, nothing created.
    before = len(sandbox.batches(dataset))
    refused = ing.replayBatch(datasetId=dataset, batchIds=[second["id"]])
    assert refused.get("status") == 404 and len(sandbox.batches(dataset)) == before


def test_aepp_parquet_batch_through_the_large_file_upload(sandbox: ExperiencePlatformSandbox,
                                                          aepp_config: configs.ConnectObject) -> None:
    """aepp sends a file's bytes only through the large-file upload (its small-file upload JSON-encodes)."""
    mapping = configured_mappings()["contacts"]
    data = to_parquet_bytes(to_xdm(contacts_frame("aepp"), mapping))
    cat, ing = catalog.Catalog(config=aepp_config), ingestion.DataIngestion(config=aepp_config)
    batch = ing.createBatch(datasetId=mapping.dataset, format="parquet")
    args = {"batchId": batch["id"], "datasetId": mapping.dataset, "filePath": "contacts.parquet"}
    half = len(data) // 2
    with pytest.warns(DeprecationWarning):  # aepp marks these methods deprecated (the API still has them)
        ing.uploadLargeFileStartEnd(**args, action="INITIALIZE")
        part = ing.uploadLargeFilePart(**args, data=data[half:], contentRange=f"bytes {half}-{len(data) - 1}")
        assert part == {"name": "contacts.parquet", "sizeInBytes": len(data) - half}
        ing.uploadLargeFilePart(**args, data=data[:half], contentRange=f"bytes 0-{half - 1}")
        ing.uploadLargeFileStartEnd(**args, action="COMPLETE")
    ing.uploadSmallFileFinish(batchId=batch["id"])
    done = _wait(cat, batch["id"])
    assert done["status"] == "success" and done["metrics"]["outputRecordCount"] == 3
    keys = {r["_sfmcsandbox"]["lifecycle"]["subscriberKey"] for r in sandbox.live_records(mapping.dataset)}
    assert keys == {"aepp-1", "aepp-2", "aepp-3"}


def test_aepp_reads_failed_batches(sandbox: ExperiencePlatformSandbox, aepp_config: configs.ConnectObject) -> None:
    dataset = sandbox.discovery()["datasets"]["engagement"]
    cat, ing = catalog.Catalog(config=aepp_config), ingestion.DataIngestion(config=aepp_config)
    batch = ing.createBatch(datasetId=dataset, format="json", multiline=True, enableDiagnostic=True)
    ing.uploadSmallFile(batchId=batch["id"], datasetId=dataset, filePath="bad.json",
                        data=[{**_event(1), "timestamp": "yesterday"}])
    ing.uploadSmallFileFinish(batchId=batch["id"])
    assert _wait(cat, batch["id"])["status"] == "failed"
    failed = cat.getFailedBatchesDF()
    row = failed.loc[batch["id"]]
    assert row["dataSetId"] == dataset and "INGEST-1401-400" in row["errorCode"]
    assert row["sandbox"]  # aepp reads `sandboxId` from every failed batch

"""The sandbox's Catalog objects, complete as Platform serves them: datasets and batches.

Fields follow `dataSetResponse` and `batchResponse` in Adobe's Catalog OpenAPI description (catalog.yaml in
https://github.com/AdobeDocs/experience-platform-apis, rendered at
https://developer.adobe.com/experience-platform-apis/references/catalog/) and the dataset Platform returns in
https://experienceleague.adobe.com/en/docs/experience-platform/catalog/api/update-object, which also
carries `classification` (`dataBehavior`, `managedBy`), `extensions`, `sandboxId` and `persistence`, fields
that real clients read: aepp's `Catalog.getDataSets` fails on a dataset without `classification`, and
its `findActiveBatch` follows the `acp_successor` tag a replay leaves on the batch it replaced.

Plain functions over plain dicts (the sandbox keeps its state as JSON); `_sandbox` holds what only the
sandbox needs and is never served.
"""

from __future__ import annotations

import copy
import hashlib
import re
from typing import Any

from .schemas import EVENT_CLASS, SCHEMA_CONTENT_TYPE

SANDBOX_ID = "5ad0c0a1-0000-4000-8000-5a4db0c5a4db"  # the Platform sandbox's id (a UUID in real responses)
SANDBOX_USER = "sandbox-technical-account@techacct.adobe.com"
STORAGE = "abfss://sandbox@sfmcassetssandbox.dfs.core.windows.net/platform"


def new_dataset(dataset_id: str, *, name: str, schema_id: str, schema_class: str, tags: dict[str, Any],
                description: str, org_id: str, client_id: str, now: int) -> dict[str, Any]:
    """A dataset as `GET /dataSets/{id}` shows it right after `POST /dataSets`."""
    table = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_") or dataset_id
    own = {k: [re.sub(r"\s+", "", str(v)) for v in vs] for k, vs in tags.items()}  # "enabled: true" == "enabled:true"
    return {
        "name": name,
        "description": description,
        "imsOrg": org_id,
        "sandboxId": SANDBOX_ID,
        "tags": {"adobe/pqs/table": [table], "adobe/siphon/table/format": ["delta"], **own},
        "classification": {"dataBehavior": "time-series" if schema_class == EVENT_CLASS else "record",
                           "managedBy": "CUSTOMER"},
        "extensions": {"adobe_lakeHouse": {}, "adobe_unifiedProfile": {}},
        "version": "1.0.0",
        "created": now,
        "updated": now,
        "createdClient": client_id,
        "createdUser": SANDBOX_USER,
        "updatedUser": SANDBOX_USER,
        "viewId": hashlib.sha1(f"view|{dataset_id}".encode()).hexdigest()[:24],
        "basePath": f"{STORAGE}/{dataset_id}",
        "observableSchema": {},
        "fileDescription": {"persisted": True, "containerFormat": "parquet", "format": "parquet"},
        "files": f"@/dataSetFiles?dataSetId={dataset_id}",
        "schemaRef": {"id": schema_id, "contentType": SCHEMA_CONTENT_TYPE},
        "persistence": {"adls": {"location": f"{STORAGE}/{dataset_id}", "adlsType": "GEN2",
                                 "credentials": f"@/dataSets/{dataset_id}/credentials"}},
    }


def complete_dataset(dataset_id: str, dataset: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Add the fields a state file written by an older sandbox lacks (in place)."""
    schema = schemas.get(dataset["schemaRef"]["id"], {})
    full = new_dataset(dataset_id, name=dataset["name"], schema_id=dataset["schemaRef"]["id"],
                       schema_class=schema.get("meta:class", ""), tags={}, description="",
                       org_id=dataset.get("imsOrg", ""), client_id=dataset.get("createdClient", ""),
                       now=dataset.get("created", 0))
    for key, value in full.items():
        if key == "tags":
            for tag, values in value.items():
                dataset["tags"].setdefault(tag, values)
        else:
            dataset.setdefault(key, value)


def dataset_batch_done(dataset: dict[str, Any], batch_id: str, status: str, now: int) -> None:
    """Record a batch's final status on its dataset (`lastBatchId`, `lastSuccessfulBatch`, ...)."""
    dataset.update(lastBatchId=batch_id, lastBatchStatus=status, updated=now)
    dataset["lastSuccessfulBatch" if status == "success" else "lastFailedBatch"] = batch_id


def new_batch(batch_id: str, *, dataset_id: str, input_format: dict[str, Any], external_id: str | None,
              tags: dict[str, Any], replay: Any, org_id: str, client_id: str, now: int) -> dict[str, Any]:
    """A batch as `POST /batches` answers it (status `loading`); `_sandbox` is added by the caller."""
    batch: dict[str, Any] = {
        "id": batch_id,
        "imsOrg": org_id,
        "sandboxId": SANDBOX_ID,
        "created": now,
        "updated": now,
        "status": "loading",
        "relatedObjects": [{"type": "dataSet", "id": dataset_id}],
        "version": "1.0.0",
        "tags": tags,
        "inputFormat": input_format,
        # externalId defaults to the batch id (batch-ingestion.yaml); duplicates are accepted.
        "externalId": external_id or batch_id,
        "createdClient": client_id,
        "createdUser": SANDBOX_USER,
        "updatedUser": SANDBOX_USER,
    }
    if replay is not None:
        batch["replay"] = copy.deepcopy(replay)
    return batch


def touch(obj: dict[str, Any], now: int, **changes: Any) -> None:
    """Apply `changes` and bump `updated` and the patch part of `version` (Catalog's semantic version)."""
    major, minor, patch = [*str(obj.get("version") or "1.0.0").split("."), "0", "0"][:3]
    obj.update(changes, updated=now, version=f"{major}.{minor}.{int(patch) + 1 if patch.isdigit() else 1}")


def finish_batch(batch: dict[str, Any], *, status: str, metrics: dict[str, Any], errors: list[dict[str, Any]],
                 now: int) -> None:
    """A batch that reached its final status: metrics, the top-level counts, and where a failure is."""
    changes: dict[str, Any] = {
        "status": status, "metrics": metrics, "completed": now,
        "recordCount": int(metrics.get("inputRecordCount") or 0),
        "failedRecordCount": int(metrics.get("failedRecordCount") or 0),
        "size": int(metrics.get("inputByteSize") or 0),
    }
    if errors:
        changes["errors"] = errors
    if status == "failed":
        changes["failedBatchLocation"] = f"@/batches/{batch['id']}/failed"
    touch(batch, now, **changes)


def replaced(batch: dict[str, Any], successor_id: str, now: int) -> None:
    """A successful batch made inactive by a replay: it names its successor (aepp follows `acp_successor`)."""
    tags = dict(batch.get("tags") or {})
    tags["acp_successor"] = [successor_id]
    if batch["status"] == "success":
        touch(batch, now, status="inactive", tags=tags)
    else:
        touch(batch, now, tags=tags)

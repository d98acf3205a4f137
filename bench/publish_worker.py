"""Publish one in-memory partition to the Experience Platform sandbox, in a fresh process.

Reads a JSON payload on stdin (the sandbox's discovery document, `rows`, `mode`), prints one JSON line.

- `ours`: what `aep/campaigns` does for one day: `to_xdm` (nested XDM, deterministic `_id`,
  identityMap) -> `to_parquet_bytes` -> `ExperiencePlatformClient.publish` (dataset check, orphan and
  predecessor lookups, create, upload, complete, poll until the batch is final).
- `floor`: the same Parquet bytes (built before the clock starts) through the bare lifecycle with plain
  `requests`: token, create, PUT, complete, poll. What any client must pay for the transfer and for
  Platform's processing, nothing else.

The input is the clean layer's frame of `Campaign_Engagement` (the validation benchmark's generator, run
through `clean`), so the records are the ones the asset would publish.
"""

import datetime as dt
import json
import sys
import time

import requests

from bench._util import peak_rss_mb
from bench.validation_worker import DAY, raw_frame
from sfmc_assets.lib.config import load_config
from sfmc_assets.lib.experience_platform import ExperiencePlatformClient
from sfmc_assets.lib.experience_platform.xdm import to_parquet_bytes, to_xdm
from sfmc_assets.lib.transforms import clean

POLL_S = 0.25


def _floor(info: dict, dataset: str, data: bytes) -> dict[str, object]:
    """The bare batch lifecycle: the least any batch-ingestion client does for one file."""
    http = requests.Session()
    token = http.post(f"{info['ims_url']}/ims/token/v3", data={
        "grant_type": "client_credentials", "client_id": info["client_id"],
        "client_secret": info["client_secret"], "scope": info["scopes"]}, timeout=60).json()["access_token"]
    http.headers.update({"Authorization": f"Bearer {token}", "x-api-key": info["client_id"],
                         "x-gw-ims-org-id": info["org_id"], "x-sandbox-name": info["sandbox_name"]})
    base = f"{info['platform_url']}/data/foundation/import/batches"
    batch = http.post(base, json={"datasetId": dataset, "inputFormat": {"format": "parquet"}}, timeout=60)
    batch.raise_for_status()
    batch_id = batch.json()["id"]
    started = time.perf_counter()
    http.put(f"{base}/{batch_id}/datasets/{dataset}/files/floor.parquet", data=data, timeout=600,
             headers={"Content-Type": "application/octet-stream"}).raise_for_status()
    upload_s = time.perf_counter() - started
    http.post(f"{base}/{batch_id}?action=COMPLETE", timeout=60,  # no body, but Platform wants a Content-Type
              headers={"Content-Type": "application/json"}).raise_for_status()
    catalog = f"{info['platform_url']}/data/foundation/catalog/batches/{batch_id}"
    while True:
        view = http.get(catalog, timeout=60).json()[batch_id]
        if view["status"] in ("success", "failed"):
            break
        time.sleep(POLL_S)
    return {"status": view["status"], "records_out": view.get("metrics", {}).get("outputRecordCount"),
            "upload_s": round(upload_s, 3), "batch_id": batch_id}


def main() -> None:
    p = json.loads(sys.stdin.read())
    info = p["discovery"]
    de = load_config().data_extension("campaigns")
    assert de.aep is not None
    frame = clean(raw_frame(p["rows"]), de, as_of=DAY + dt.timedelta(days=1)).frame
    out: dict[str, object] = {"mode": p["mode"], "rows": frame.height, "rss_before_mb": round(peak_rss_mb(), 1)}
    if p["mode"] == "floor":
        data = to_parquet_bytes(to_xdm(frame, de.aep))
        del frame
        started = time.perf_counter()
        out |= _floor(info, de.aep.dataset, data)
    else:
        started = time.perf_counter()
        records = to_xdm(frame, de.aep)
        out["map_s"] = round(time.perf_counter() - started, 3)
        mark = time.perf_counter()
        data = to_parquet_bytes(records)
        out["encode_s"] = round(time.perf_counter() - mark, 3)
        del records
        mark = time.perf_counter()
        with ExperiencePlatformClient.from_discovery(info) as client:
            result = client.publish(de.aep.dataset, data, label="bench/campaigns", poll_initial_s=POLL_S,
                                    poll_max_s=POLL_S)
        out |= {"status": result.status, "records_out": result.records_out, "batch_id": result.batch_id,
                "publish_s": round(time.perf_counter() - mark, 3)}
    total = time.perf_counter() - started
    # The sandbox's own processing time (validating every record against the XDM schema, storing them):
    # what Platform costs, not the client; `client_s` is the rest.
    view = requests.get(f"{info['platform_url']}/_sandbox/batches/{out['batch_id']}", timeout=60).json()
    out |= {"platform_s": view["processingSeconds"],
            "client_s": round(total - float(view["processingSeconds"]), 3)}
    out |= {"file_mb": round(len(data) / 1e6, 1), "total_s": round(total, 3),
            "records_per_s": round(int(out["rows"]) / total), "peak_rss_mb": round(peak_rss_mb(), 1)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()

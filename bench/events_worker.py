"""Read one day of one tracking-event type from the sandbox's SOAP endpoint, in a fresh process.

Reads a JSON payload on stdin (the sandbox's discovery document, `mode`, `event`, `day`), prints one JSON
line.

- `ours`: what `sfmc/raw/events/<type>` does for one day: `extract_events` (token, Retrieve +
  ContinueRequest with lxml-built envelopes, each page parsed by lxml, typed with Polars, written to a
  Parquet partition).
- `floor`: the same requests with plain `requests` (token, the same envelopes), each answer kept as bytes:
  only `OverallStatus`, `RequestID` and the number of objects are found, by a regular expression. What any
  client must pay for the transfer and the server, nothing else.
"""

import json
import re
import sys
import tempfile
import time

import requests

from bench._util import peak_rss_mb
from sfmc_assets.lib.events import EVENTS, extract_events
from sfmc_assets.lib.extract import Window
from sfmc_assets.lib.lake import ParquetLake
from sfmc_assets.lib.marketing_cloud import MarketingCloudClient
from sfmc_assets.lib.marketing_cloud.soap import SoapReader, retrieve_envelope, window_filter

_STATUS = re.compile(rb"<OverallStatus>([^<]*)</OverallStatus>")
_REQUEST_ID = re.compile(rb"<RequestID>([^<]*)</RequestID>")


def _floor(info: dict, event: str, window: Window) -> dict[str, object]:
    http = requests.Session()
    token_body = http.post(f"{info['auth_base_uri']}v2/token", json={
        "grant_type": "client_credentials", "client_id": info["client_id"],
        "client_secret": info["client_secret"]}, timeout=60).json()
    token, url = token_body["access_token"], token_body["soap_instance_url"] + "Service.asmx"
    spec = EVENTS[event]
    envelope = retrieve_envelope(token, object_type=spec.object_type, properties=spec.properties,
                                 flt=window_filter("EventDate", window.start, window.end))
    objects = pages = 0
    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": "Retrieve"}
    while True:
        body = http.post(url, data=envelope, headers=headers, timeout=120).content
        status = _STATUS.search(body)
        request_id = _REQUEST_ID.search(body)
        assert status is not None and request_id is not None, body[:500]
        objects += body.count(b"<Results ")
        pages += 1
        if status.group(1) != b"MoreDataAvailable":
            return {"objects": objects, "pages": pages}
        envelope = retrieve_envelope(token, continue_request=request_id.group(1).decode())


def _ours(info: dict, event: str, window: Window) -> dict[str, object]:
    client = MarketingCloudClient(str(info["auth_base_uri"]), str(info["client_id"]), str(info["client_secret"]))
    reader = SoapReader(client)
    with tempfile.TemporaryDirectory(prefix="sfmc_bench_events_") as tmp:
        lake = ParquetLake(tmp)
        result = extract_events(reader, EVENTS[event], window, lambda s: lake.writer(["raw"], "day", s))
    reader.close()
    client.close()
    assert result.rows == result.objects, result
    return {"objects": result.objects, "pages": result.pages}


def main() -> None:
    payload = json.loads(sys.stdin.read())
    window = Window.day(payload["day"])
    started = time.perf_counter()
    out = (_ours if payload["mode"] == "ours" else _floor)(payload["discovery"], payload["event"], window)
    elapsed = time.perf_counter() - started
    print(json.dumps({**out, "mode": payload["mode"], "seconds": round(elapsed, 3),
                      "events_per_s": round(int(out["objects"]) / elapsed), "peak_rss_mb": round(peak_rss_mb(), 1)}))


if __name__ == "__main__":
    main()

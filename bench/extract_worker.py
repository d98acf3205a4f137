"""One extraction in a fresh process: `ours` (the project's extract), `floor` (fetch + JSON decode only),
`sequential` (page by page following `links.next`, one Python dict per row: how the Singer tap and the
SDKs read) or `server` (the same pages fetched as bytes, not even decoded: what the sandbox can serve).

Reads a JSON payload on stdin (`max_pages`, for `sequential`, stops after that many pages: a sampled run),
prints a JSON result line with rows, pages, seconds, the process's CPU seconds and peak RSS.
"""

import datetime as dt
import json
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import orjson

from bench._util import peak_rss_mb
from sfmc_assets.lib.config import load_config
from sfmc_assets.lib.extract import Window, extract_window, window_filter
from sfmc_assets.lib.http import encode_query
from sfmc_assets.lib.lake import ParquetLake
from sfmc_assets.lib.marketing_cloud import MarketingCloudClient


def _client(p: dict) -> MarketingCloudClient:
    return MarketingCloudClient(p["auth_base_uri"], p["client_id"], p["client_secret"],
                                pool_size=p["concurrency"] + 2)


def ours(p: dict) -> tuple[int, int]:
    de = load_config().data_extension(p["data_extension"])
    window = Window(dt.datetime.fromisoformat(p["start"]).replace(tzinfo=dt.timezone.utc),
                    dt.datetime.fromisoformat(p["end"]).replace(tzinfo=dt.timezone.utc))
    with tempfile.TemporaryDirectory() as tmp, _client(p) as client:
        lake = ParquetLake(tmp)
        result = extract_window(client, de, window, lambda s: lake.writer(["bench"], "p", s),
                                utc_offset=dt.timedelta(hours=-6), concurrency=p["concurrency"])
        return result.rows, result.pages


def _pages(p: dict, decode: bool) -> tuple[int, int]:
    """Rows and pages of the window, page 1 then pages 2..N by token with `concurrency` in flight."""
    de = load_config().data_extension(p["data_extension"])
    window = Window(dt.datetime.fromisoformat(p["start"]).replace(tzinfo=dt.timezone.utc),
                    dt.datetime.fromisoformat(p["end"]).replace(tzinfo=dt.timezone.utc))
    flt = window_filter(de.delta_column, window, dt.timedelta(hours=-6))
    with _client(p) as client:
        first = client.get_json(f"data/v1/customobjectdata/key/{de.external_key}/rowset",
                                {"$page": 1, "$pageSize": 2500, "$filter": flt,
                                 "$orderBy": f"{de.primary_key[0]} asc"})
        count, token = int(first["count"]), first["requestToken"]
        pages = -(-count // 2500)

        def fetch(n: int) -> int:
            url = f"{client.rest_base}data/v1/customobjectdata/token/{token}/rowset?$page={n}"
            resp = client.session.http.get(url, headers={"Authorization": f"Bearer {client.session.token().value}"})
            resp.raise_for_status()
            if decode:
                return len(orjson.loads(resp.content).get("items") or [])
            # Not decoded: the rows a full page holds (the last one holds the rest).
            return len(resp.content) and min(2500, count - 2500 * (n - 1))

        with ThreadPoolExecutor(p["concurrency"]) as pool:
            return len(first.get("items") or []) + sum(pool.map(fetch, range(2, pages + 1))), max(1, pages)


def floor(p: dict) -> tuple[int, int]:
    """The same pages with the same concurrency, only JSON-decoded: what any client must at least pay."""
    return _pages(p, decode=True)


def server(p: dict) -> tuple[int, int]:
    """The same pages with the same concurrency, bodies read and dropped: the sandbox's serving rate."""
    return _pages(p, decode=False)


def sequential(p: dict) -> tuple[int, int]:
    """One page at a time, following `links.next`, one dict per row (keys and values merged).

    This is how the Singer tap and the SDKs read a rowset: a plain `requests` session, `response.json()`,
    a dict per record handed downstream; no page is requested before the previous one was processed.
    """
    de = load_config().data_extension(p["data_extension"])
    window = Window(dt.datetime.fromisoformat(p["start"]).replace(tzinfo=dt.timezone.utc),
                    dt.datetime.fromisoformat(p["end"]).replace(tzinfo=dt.timezone.utc))
    flt = window_filter(de.delta_column, window, dt.timedelta(hours=-6))
    rows = pages = 0
    max_pages = int(p.get("max_pages") or 0)
    with _client(p) as client:
        session = client.session.http
        base = client.rest_base + "data"  # `links.next` is relative to the REST base + /data
        # `params=` would encode the filter's spaces as `+`, which Marketing Cloud's clients never send.
        query = encode_query({"$page": 1, "$pageSize": 2500, "$filter": flt,
                              "$orderBy": f"{de.primary_key[0]} asc"}, safe="$,'")
        url: str | None = f"{base}/v1/customobjectdata/key/{de.external_key}/rowset?{query}"
        while url:
            resp = session.get(url, headers={"Authorization": f"Bearer {client.session.token().value}"})
            resp.raise_for_status()
            body = resp.json()
            records = [{**item.get("keys", {}), **item.get("values", {})} for item in body.get("items") or []]
            rows += len(records)
            pages += 1
            nxt = (body.get("links") or {}).get("next")
            url = base + nxt if nxt and pages != max_pages else None
    return rows, pages


def main() -> None:
    payload = json.loads(sys.stdin.read())
    started, cpu_before = time.perf_counter(), _cpu_s()
    rows, pages = {"ours": ours, "floor": floor, "sequential": sequential,
                   "server": server}[payload["mode"]](payload)
    seconds = time.perf_counter() - started
    print(json.dumps({"mode": payload["mode"], "rows": rows, "pages": pages, "seconds": round(seconds, 3),
                      "rows_per_s": round(rows / seconds), "cpu_s": round(_cpu_s() - cpu_before, 2),
                      "peak_rss_mb": round(peak_rss_mb(), 1)}))


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()

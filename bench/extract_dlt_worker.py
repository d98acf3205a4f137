"""The dlt peer in a fresh process: dlt's `rest_api` source reading one data extension, Parquet out.

What a data engineer would configure for Marketing Cloud with dlt (there is no verified dlt source for it,
reference peer-tools.md): the REST client with OAuth2 client credentials against `/v2/token`, the rowset
endpoint with the same `$filter`, `$orderBy` and `$pageSize` as the other clients, `items` as the data
selector, a JSON link paginator on `links.next`, one flat dict per row (keys and values merged) and the
`filesystem` destination writing Parquet into a temporary directory. Two Marketing Cloud quirks need a
few lines each, as they would for anyone: the token endpoint takes JSON, not a form (dlt's default),
`links.next` is relative to `<REST base>/data`, not to the host root where `urljoin` would put it, and
the query string is encoded by hand (spaces as `%20`, not the `+` of `requests`' `params`).

Reads a JSON payload on stdin (as `extract_worker`; `max_pages` reads only the first pages, for a
sampled run), prints a JSON result line with rows, pages, seconds and peak RSS. dlt runs offline and
quiet: telemetry off, its data and pipelines directories inside the temporary directory.
"""

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _quiet_dlt(tmp: Path) -> None:
    """dlt reads these when imported: no telemetry, nothing written outside `tmp`, warnings only."""
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    os.environ["RUNTIME__LOG_LEVEL"] = "WARNING"
    os.environ["DLT_DATA_DIR"] = str(tmp / "dlt_data")
    os.environ["DLT_PROJECT_DIR"] = str(tmp)  # no `.dlt/` config or secrets picked up from the repository


def run(p: dict[str, Any], tmp: Path) -> tuple[int, int]:
    """Rows written to Parquet and pages read, by one `pipeline.run` of the `rest_api` source."""
    import datetime as dt
    from urllib.parse import quote, urlencode

    import dlt
    import pyarrow.parquet as pq
    from dlt.common.configuration import configspec
    from dlt.sources.helpers.rest_client.auth import OAuth2ClientCredentials
    from dlt.sources.helpers.rest_client.paginators import JSONLinkPaginator
    from dlt.sources.rest_api import rest_api_source

    from sfmc_assets.lib.config import load_config
    from sfmc_assets.lib.extract import Window, window_filter

    @configspec
    class MarketingCloudAuth(OAuth2ClientCredentials):
        def build_access_token_request(self) -> dict[str, Any]:
            # Marketing Cloud's `/v2/token` takes a JSON body (dlt's default is a form).
            return {"json": {"grant_type": "client_credentials", "client_id": self.client_id,
                             "client_secret": self.client_secret}}

    class MarketingCloudLinkPaginator(JSONLinkPaginator):
        def __init__(self, data_base: str) -> None:
            super().__init__(next_url_path="links.next")
            self.data_base = data_base

        def update_state(self, response: Any, data: Any = None) -> None:
            nonlocal pages
            pages += 1
            super().update_state(response, data)

        def update_request(self, request: Any) -> None:
            # `links.next` is `/v1/customobjectdata/token/...`, relative to `<REST base>/data`.
            if self._next_reference and self._next_reference.startswith("/"):
                self._next_reference = self.data_base + self._next_reference
            super().update_request(request)

    pages = 0
    de = load_config().data_extension(p["data_extension"])
    window = Window(dt.datetime.fromisoformat(p["start"]).replace(tzinfo=dt.timezone.utc),
                    dt.datetime.fromisoformat(p["end"]).replace(tzinfo=dt.timezone.utc))
    base = str(p["auth_base_uri"]).rstrip("/")  # the sandbox serves auth and REST on one host
    source = rest_api_source({
        "client": {
            "base_url": base + "/",
            "auth": MarketingCloudAuth(access_token_url=base + "/v2/token", client_id=p["client_id"],
                                       client_secret=p["client_secret"]),
            "paginator": MarketingCloudLinkPaginator(base + "/data"),
        },
        "resources": [{
            "name": "campaign_engagement",
            "endpoint": {
                # The query goes in the path: `params` would be encoded by `requests`, spaces as `+`,
                # which Marketing Cloud's clients never send (and the sandbox refuses, as a strict server).
                "path": f"data/v1/customobjectdata/key/{de.external_key}/rowset?" + urlencode(
                    {"$page": 1, "$pageSize": 2500,
                     "$filter": window_filter(de.delta_column, window, dt.timedelta(hours=-6)),
                     "$orderBy": f"{de.primary_key[0]} asc"}, quote_via=quote, safe="$,'"),
                "data_selector": "items",
            },
            "processing_steps": [{"map": lambda item: {**item["keys"], **item["values"]}}],
        }],
    })
    if p.get("max_pages"):
        source.resources["campaign_engagement"].add_limit(int(p["max_pages"]))  # counts pages, not rows
    pipeline = dlt.pipeline(pipeline_name="bench_dlt", pipelines_dir=str(tmp / "pipelines"),
                            destination=dlt.destinations.filesystem(bucket_url=(tmp / "lake").as_uri()),
                            dataset_name="sfmc", progress="log" if p.get("progress") else None)
    pipeline.run(source, loader_file_format="parquet")
    files = list((tmp / "lake").rglob("campaign_engagement/*.parquet"))
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files), pages


def main() -> None:
    payload = json.loads(sys.stdin.read())
    with tempfile.TemporaryDirectory(prefix="sfmc_bench_dlt_") as name:
        tmp = Path(name)
        _quiet_dlt(tmp)
        import dlt.sources.rest_api  # noqa: F401  imported before the clock starts, as the other workers' imports
        import pyarrow.parquet  # noqa: F401

        from bench._util import peak_rss_mb

        started = time.perf_counter()
        rows, pages = run(payload, tmp)
        seconds = time.perf_counter() - started
    print(json.dumps({"mode": "dlt", "rows": rows, "pages": pages, "seconds": round(seconds, 3),
                      "rows_per_s": round(rows / seconds), "peak_rss_mb": round(peak_rss_mb(), 1)}))


if __name__ == "__main__":
    main()

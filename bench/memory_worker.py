"""One partition through extract -> clean -> pandera validation, in a fresh process.

Reads a JSON payload on stdin (sandbox discovery, window), prints a JSON result line with rows, the
seconds of each step and the process's peak RSS after each step (`ru_maxrss` never goes down, so the
last value is the whole run's peak).
"""

import datetime as dt
import json
import sys
import tempfile
import time

from bench._util import peak_rss_mb
from sfmc_assets.lib.config import load_config
from sfmc_assets.lib.extract import Window, extract_window
from sfmc_assets.lib.lake import ParquetLake
from sfmc_assets.lib.marketing_cloud import MarketingCloudClient
from sfmc_assets.lib.schemas import contract
from sfmc_assets.lib.transforms import clean
from sfmc_assets.lib.validation import validate


def main() -> None:
    p = json.loads(sys.stdin.read())
    de = load_config().data_extension(p["data_extension"])
    window = Window(dt.datetime.fromisoformat(p["start"]).replace(tzinfo=dt.timezone.utc),
                    dt.datetime.fromisoformat(p["end"]).replace(tzinfo=dt.timezone.utc))
    out: dict[str, object] = {"rss_start_mb": round(peak_rss_mb(), 1)}
    with tempfile.TemporaryDirectory() as tmp:
        lake = ParquetLake(tmp)
        started = time.perf_counter()
        with MarketingCloudClient(p["auth_base_uri"], p["client_id"], p["client_secret"], pool_size=6) as client:
            result = extract_window(client, de, window, lambda s: lake.writer(["raw"], "p", s),
                                    utc_offset=dt.timedelta(hours=-6))
        out |= {"rows": result.rows, "extract_s": round(time.perf_counter() - started, 2),
                "peak_after_extract_mb": round(peak_rss_mb(), 1)}
        started = time.perf_counter()
        cleaned = clean(lake.scan(["raw"], "p"), de, as_of=window.end)
        out |= {"clean_rows": cleaned.frame.height, "clean_s": round(time.perf_counter() - started, 2),
                "peak_after_clean_mb": round(peak_rss_mb(), 1),
                "clean_frame_mb": round(cleaned.frame.estimated_size("mb"), 1)}
        started = time.perf_counter()
        gate = validate(cleaned.frame, contract(de.kind_def, window.start, window.end))
        out |= {"failing_rows": gate.failing_rows, "validate_s": round(time.perf_counter() - started, 2),
                "peak_rss_mb": round(peak_rss_mb(), 1)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()

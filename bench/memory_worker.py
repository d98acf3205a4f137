"""One partition through extract -> clean -> pandera validation -> write, in a fresh process.

Reads a JSON payload on stdin (sandbox discovery, window), prints a JSON result line with rows, the
seconds of each step and the process's peak RSS after each step (`ru_maxrss` never goes down, so the
last value is the whole run's peak). The clean step is the clean asset's own `clean_and_gate` (batches
cleaned, gated and appended to the partition file), then the commit of the valid rows.
"""

import datetime as dt
import json
import sys
import tempfile
import time

from bench._util import peak_rss_mb
from sfmc_assets.defs.clean.assets import clean_and_gate
from sfmc_assets.defs.marketing_cloud.assets import raw_key
from sfmc_assets.lib.config import load_config
from sfmc_assets.lib.extract import Window, extract_window
from sfmc_assets.lib.lake import ParquetLake
from sfmc_assets.lib.marketing_cloud import MarketingCloudClient
from sfmc_assets.lib.transforms import CLEAN_BATCH_ROWS


def main() -> None:
    p = json.loads(sys.stdin.read())
    de = load_config().data_extension(p["data_extension"])
    window = Window(dt.datetime.fromisoformat(p["start"]).replace(tzinfo=dt.timezone.utc),
                    dt.datetime.fromisoformat(p["end"]).replace(tzinfo=dt.timezone.utc))
    partition = window.start.date().isoformat()
    out: dict[str, object] = {"rss_start_mb": round(peak_rss_mb(), 1)}
    with tempfile.TemporaryDirectory() as tmp:
        lake = ParquetLake(tmp)
        started = time.perf_counter()
        with MarketingCloudClient(p["auth_base_uri"], p["client_id"], p["client_secret"], pool_size=6) as client:
            result = extract_window(client, de, window, lambda s: lake.writer(raw_key(de).path, partition, s),
                                    utc_offset=dt.timedelta(hours=-6))
        out |= {"rows": result.rows, "extract_s": round(time.perf_counter() - started, 2),
                "peak_after_extract_mb": round(peak_rss_mb(), 1)}
        started = time.perf_counter()
        plan, gate, valid = clean_and_gate(lake, de, partition)
        assert gate.within(de.quarantine_tolerance), gate.failures_by_rule()
        valid.commit()
        out |= {"clean_rows": gate.rows_checked - gate.failing_rows, "duplicates_removed": plan.removed,
                "failing_rows": gate.failing_rows, "batch_rows": CLEAN_BATCH_ROWS,
                "clean_validate_write_s": round(time.perf_counter() - started, 2),
                "peak_rss_mb": round(peak_rss_mb(), 1)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()

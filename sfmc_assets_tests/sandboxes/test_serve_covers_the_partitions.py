"""`make run`'s sandbox serves data from the configuration's first partition on, so no partition a new user
sees in the UI is empty because the sandbox started later (#14.4)."""

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from sfmc_assets.lib.config import load_config
from sfmc_assets.lib.marketing_cloud import MarketingCloudClient
from sfmc_assets.sandboxes.marketing_cloud.tenant import SERVER_OFFSET


def _count(client: MarketingCloudClient, key: str, column: str, day: dt.date) -> int:
    start = dt.datetime.combine(day, dt.time()) + SERVER_OFFSET  # the UTC day in Marketing Cloud's server time
    end = start + dt.timedelta(days=1)
    body = client.get_json(f"data/v1/customobjectdata/key/{key}/rowset", {
        "$page": 1, "$pageSize": 1,
        "$filter": f"{column} gte '{start:%Y-%m-%dT%H:%M:%S}' and {column} lt '{end:%Y-%m-%dT%H:%M:%S}'"})
    return int(body["count"])


def test_the_first_partition_and_yesterday_have_rows(tmp_path: Path) -> None:
    first = min(de.start_date or load_config().start_date for de in load_config().data_extensions)
    env = {**os.environ, "SFMC_ASSETS_HOME": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "sfmc_assets.sandboxes", "serve", "--no-experience-platform",
                             "--rows", "Contacts_DE=2000"], env=env, stdout=subprocess.DEVNULL)
    discovery = tmp_path / "sandboxes" / "marketing_cloud.json"
    try:
        deadline = time.monotonic() + 120
        while not discovery.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the sandbox did not start"
            time.sleep(0.2)
        info = json.loads(discovery.read_text())
        client = MarketingCloudClient(info["auth_base_uri"], info["client_id"], info["client_secret"])
        yesterday = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
        for day in (first, yesterday):
            assert _count(client, "Campaign_Engagement", "EventDate", day) > 0, day
            assert _count(client, "Web_Activities", "ActivityDate", day) > 0, day
        assert _count(client, "Contacts_DE", "ModifiedDate", first) > 0
        assert _count(client, "Campaign_Engagement", "EventDate", first - dt.timedelta(days=1)) == 0
        client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)

"""One token per deployment: a multiprocess Dagster run asks each service for one token, whatever its steps.

`dagster asset materialize` runs the raw, clean and publish assets of every data extension with the
default multiprocess executor (each step in its own process, two at a time) against both sandboxes found
through their discovery files, as `make run` sets them up. The Marketing Cloud sandbox is as strict as
Salesforce may be: it answers any token request beyond the first with 429 / errorcode 50200, so the run
only succeeds if every step process used the one token the first one requested; the sandboxes' own
counters must show one token request each.
"""

import datetime as dt
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from sfmc_assets.lib.config import load_config
from sfmc_assets.lib.events import configured
from sfmc_assets.sandboxes.experience_platform import ExperiencePlatformSandbox
from sfmc_assets.sandboxes.marketing_cloud import MarketingCloudSandbox

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
DAGSTER = Path(sys.executable).parent / "dagster"
PARTITION = "2026-10-03"
SELECTION = "group:sfmc_raw,group:sfmc_clean,group:aep_publish"


def test_a_multiprocess_run_requests_one_token_per_service(tmp_path: Path) -> None:
    home = tmp_path / "home"
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True)
    shutil.copy(REPO / "deploy" / "dagster.dev.yaml", dagster_home / "dagster.yaml")
    mc = MarketingCloudSandbox(tmp_path / "mc_state", start=dt.date(2026, 10, 1), end=dt.date(2026, 10, 8),
                               rows={"Contacts_DE": 120, "Campaign_Engagement": 600, "Web_Activities": 600, "Orders": 300},
                               token_limit=1).start()
    aep = ExperiencePlatformSandbox(tmp_path / "aep_state", processing_delay_s=0.05).start()
    try:
        (home / "sandboxes").mkdir()
        for name, sandbox in (("marketing_cloud", mc), ("experience_platform", aep)):
            (home / "sandboxes" / f"{name}.json").write_text(json.dumps(sandbox.discovery()))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SFMC_", "AEP_", "DAGSTER_"))}
        env.update({"SFMC_ASSETS_HOME": str(home), "DAGSTER_HOME": str(dagster_home),
                    "SFMC_ASSETS_EXECUTOR": "multiprocess", "SFMC_ASSETS_MAX_CONCURRENT": "2"})
        proc = subprocess.run(
            [str(DAGSTER), "asset", "materialize", "-m", "sfmc_assets.definitions", "--select", SELECTION,
             "--partition", PARTITION], cwd=REPO, env=env, capture_output=True, text=True, timeout=540, check=False)
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, output[-5000:]
        with mc._server.lock:
            issued = set(mc._server.tokens)
        mc_stats, aep_stats = mc.stats(), aep.stats()
    finally:
        mc.stop()
        aep.stop()

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        steps = {e.step_key for e in instance.all_logs(instance.get_runs()[0].run_id,
                                                       of_type=dg.DagsterEventType.STEP_SUCCESS)}
        processes = {e.dagster_event.pid for e in instance.all_logs(instance.get_runs()[0].run_id,
                                                      of_type=dg.DagsterEventType.STEP_START)}
    config = load_config()
    extensions, events = config.data_extensions, configured(config)
    published = [de for de in extensions if de.aep is not None]
    published += events if config.tracking_events and config.tracking_events.aep else []
    # raw, clean, publish of each data extension and tracking-event type (these read through SOAP)
    assert len(steps) == 2 * (len(extensions) + len(events)) + len(published), steps
    assert len(processes) >= len(steps) - 3, processes  # one process per step (a pid may be reused)
    assert mc_stats["rowset_key"] >= len(extensions) and aep_stats["create_batch"] == len(published)
    assert mc_stats["soap"] >= len(events)
    assert mc_stats["token"] == 1 and mc_stats.get("token_blocked", 0) == 0
    assert aep_stats["ims"] == 1
    assert len(issued) == 1
    # The shared cache: one file per client, private, and useless without the client secret.
    files = sorted((home / "tokens").glob("*.token"))
    assert len(files) == 2
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert not any(token.encode() in path.read_bytes() for token in issued)

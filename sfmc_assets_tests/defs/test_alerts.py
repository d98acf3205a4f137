"""The run-failure sensor posts a useful payload to a webhook (a real HTTP receiver on loopback)."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest

from sfmc_assets.defs.alerts import WEBHOOK_ENV, notify_on_run_failure
from sfmc_assets.lib.config import ProjectConfig
from sfmc_assets.sandboxes.marketing_cloud import MarketingCloudSandbox
from sfmc_assets_tests.defs.conftest import make_materialize


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict]]]:
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


def test_failed_run_is_posted(receiver, monkeypatch: pytest.MonkeyPatch, fresh_mc_sandbox: MarketingCloudSandbox,
                              tmp_path: Path, instance: dg.DagsterInstance, config: ProjectConfig) -> None:
    url, received = receiver
    fresh_mc_sandbox.inject_bad_rows("Contacts_DE", "invalid_email", __import__("datetime").date(2026, 10, 3), n=1)
    result = make_materialize(fresh_mc_sandbox, tmp_path, instance, config)("2026-10-03", selection="sfmc/raw/contacts+")
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        sensor_name="notify_on_run_failure", dagster_event=failure, dagster_instance=instance,
        dagster_run=result.dagster_run,
    ).for_run_failure()
    monkeypatch.delenv(WEBHOOK_ENV, raising=False)
    notify_on_run_failure(context)
    assert received == []  # no webhook configured: logged, not posted
    monkeypatch.setenv(WEBHOOK_ENV, url)
    notify_on_run_failure(context)
    assert len(received) == 1
    payload = received[0]
    assert payload["run_id"] == result.run_id and payload["partition"] == "2026-10-03"
    assert payload["failed_steps"][0]["step"] == "sfmc__clean__contacts"
    assert "Contacts_DE" in payload["text"] and "pandera_contract" in payload["text"]

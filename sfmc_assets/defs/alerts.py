"""Run-failure alerts: a failed run is posted as JSON to a webhook (Slack, Teams, PagerDuty, ...).

`SFMC_ASSETS_ALERT_WEBHOOK` is read when the sensor evaluates, not when the code loads, so setting it
needs no redeploy; with it unset the sensor only logs. The payload carries what an on-call person needs
to act: the run, its job, the partition or range, the failed steps and the error messages (which name the
data extension, the partition and the cause, and never hold a secret).
"""

import os
from typing import Any

import dagster as dg
import requests
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

WEBHOOK_ENV = "SFMC_ASSETS_ALERT_WEBHOOK"


def alert_payload(context: dg.RunFailureSensorContext) -> dict[str, Any]:
    run = context.dagster_run
    tags = run.tags
    failures = [
        {"step": e.step_key, "message": e.step_failure_data.error.message.strip() if e.step_failure_data.error else ""}
        for e in context.get_step_failure_events()
    ]
    return {
        "text": f"sfmc_assets run {run.run_id[:8]} ({run.job_name}) failed: "
                + ("; ".join(f"{f['step']}: {f['message'][:300]}" for f in failures) or context.failure_event.message),
        "run_id": run.run_id,
        "job": run.job_name,
        "partition": tags.get("dagster/partition"),
        "partition_range": [tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")]
        if tags.get("dagster/asset_partition_range_start") else None,
        "backfill": tags.get("dagster/backfill"),
        "failed_steps": failures,
    }


@retry(retry=retry_if_exception_type(requests.RequestException), stop=stop_after_attempt(3),
       wait=wait_exponential(multiplier=0.5, max=5), reraise=True)
def _post(url: str, payload: dict[str, Any]) -> None:
    requests.post(url, json=payload, timeout=10).raise_for_status()


@dg.run_failure_sensor(
    name="notify_on_run_failure",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"Posts every failed run to the webhook in {WEBHOOK_ENV} (logs only when it is unset).",
)
def notify_on_run_failure(context: dg.RunFailureSensorContext) -> None:
    url = os.environ.get(WEBHOOK_ENV)
    payload = alert_payload(context)
    if not url:
        context.log.info(f"{WEBHOOK_ENV} is not set; not posting: {payload['text']}")
        return
    _post(url, payload)

"""Reading check results back from a Dagster instance, as the UI shows them: the latest per day."""

import dagster as dg


def latest_check_status(instance: dg.DagsterInstance, key: str | dg.AssetKey, check: str) -> dict[str, str]:
    """`{day: status}` of the newest evaluation of `check` on each day of `key` (`SUCCEEDED`, `FAILED`, ...)."""
    asset = key if isinstance(key, dg.AssetKey) else dg.AssetKey(key.split("/"))
    records = instance.event_log_storage.get_asset_check_execution_history(dg.AssetCheckKey(asset, check), limit=100)
    latest: dict[str, str] = {}
    for r in records:  # newest first
        if r.event and r.event.asset_check_evaluation and r.event.asset_check_evaluation.partition:
            latest.setdefault(r.event.asset_check_evaluation.partition, r.status.value)
    return latest

"""One Dagster run of assets over a range of days, in this process, as `dg launch --partition-range` does.

Reads a JSON payload on stdin: `{"start": day, "end": day, "select": "*" | "a/b/c,d/e"}`; prints one
JSON line: the run's id, status, run time (the run record's start to end), the time each step spent in
its own code (STEP_START to STEP_SUCCESS/FAILURE) and this process's wall time. The project is imported
from the working directory, so the same worker runs today's code and an older checkout alike (`dg
launch` would refuse ranges of assets whose backfill policy is not `single_run`; the run itself does not
care).
"""

import json
import os
import sys
import time

STARTED = time.perf_counter()


def main() -> None:
    payload = json.loads(sys.stdin.read())
    import dagster as dg
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    sys.path.insert(0, os.getcwd())
    repo = ReconstructableRepository.for_module("sfmc_assets.definitions", "defs", working_directory=os.getcwd())
    repo_def = repo.get_definition()
    select = payload.get("select", "*")
    selection = (dg.AssetSelection.all() if select == "*" else
                 dg.AssetSelection.assets(*(dg.AssetKey(k.split("/")) for k in select.split(","))))
    keys = selection.resolve(repo_def.asset_graph)
    job_name = repo_def.get_implicit_job_def_for_assets(keys).name
    tags = {"dagster/asset_partition_range_start": payload["start"],
            "dagster/asset_partition_range_end": payload["end"]}
    import sfmc_assets

    code = os.path.dirname(os.path.dirname(os.path.abspath(sfmc_assets.__file__)))
    assert os.path.samefile(code, os.getcwd()), f"imported {code}, not the checkout in {os.getcwd()}"
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(repo.get_reconstructable_job(job_name), instance=instance,
                                asset_selection=list(keys), tags=tags)
        record = instance.get_run_record_by_id(result.run_id)
        steps = _step_seconds(instance, result.run_id)
        failures = [e.dagster_event.step_failure_data.error.message[:500] for e in instance.all_logs(
            result.run_id, of_type=dg.DagsterEventType.STEP_FAILURE) if e.dagster_event.step_failure_data.error]
    print(json.dumps({
        "run_id": result.run_id, "success": result.success,
        "run_s": round(record.end_time - record.start_time, 2),
        "steps": len(steps), "step_code_s": round(sum(steps.values()), 2),
        "longest_step_s": round(max(steps.values(), default=0.0), 2),
        "process_s": round(time.perf_counter() - STARTED, 2), "failures": failures,
    }))


def _step_seconds(instance: object, run_id: str) -> dict[str, float]:
    """Seconds from each step's start to its end: the time spent in the step's own work."""
    import dagster as dg

    starts: dict[str, float] = {}
    spent: dict[str, float] = {}
    for entry in instance.all_logs(run_id):  # type: ignore[attr-defined]
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            starts[event.step_key] = entry.timestamp
        elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            spent[event.step_key] = entry.timestamp - starts.get(event.step_key, entry.timestamp)
    return spent


if __name__ == "__main__":
    main()

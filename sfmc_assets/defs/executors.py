"""The step executor, chosen by the environment so operators can switch it without code changes.

`SFMC_ASSETS_EXECUTOR`: `multiprocess` (default: one process per step, steps in parallel, up to
`SFMC_ASSETS_MAX_CONCURRENT` at once) or `in_process` (all steps in the run's process: no step start-up
at all, no parallel steps) or `k8s` (one Kubernetes pod per step: `dagster_k8s.k8s_job_executor`, from
the `k8s` extra the image installs; step pods take the run launcher's settings, docs/deploy.md).

Step processes are forked from a server that has already imported the project and built its definitions
(`SFMC_ASSETS_START_METHOD=forkserver`, the default; `sfmc_assets.preload`): a step then starts in
milliseconds instead of paying a fresh interpreter, the imports of Dagster, Polars, pandera and DuckDB and
a definitions load (seconds each, per step). `spawn` is Dagster's default, kept to compare.
"""

import multiprocessing
import os

import dagster as dg

PRELOAD_MODULE = "sfmc_assets.preload"


def _start_method() -> dict[str, object]:
    method = os.environ.get("SFMC_ASSETS_START_METHOD", "forkserver")
    if method not in ("forkserver", "spawn"):
        raise ValueError(f"SFMC_ASSETS_START_METHOD={method!r}: expected forkserver or spawn")
    if method == "forkserver" and "forkserver" in multiprocessing.get_all_start_methods():
        return {"forkserver": {"preload_modules": ["dagster._core.executor.multiprocess", PRELOAD_MODULE]}}
    return {"spawn": {}}


def executor_from_env() -> dg.ExecutorDefinition:
    kind = os.environ.get("SFMC_ASSETS_EXECUTOR", "multiprocess")
    if kind == "in_process":
        return dg.in_process_executor
    if kind == "multiprocess":
        max_concurrent = int(os.environ.get("SFMC_ASSETS_MAX_CONCURRENT", "0")) or None
        config: dict[str, object] = {"start_method": _start_method()}
        if max_concurrent:
            config["max_concurrent"] = max_concurrent
        return dg.multiprocess_executor.configured(config)
    if kind == "k8s":
        from dagster_k8s import k8s_job_executor  # type: ignore[import-not-found]

        return k8s_job_executor
    raise ValueError(f"SFMC_ASSETS_EXECUTOR={kind!r}: expected multiprocess, in_process or k8s")

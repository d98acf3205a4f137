"""The step executor, chosen by the environment so operators can switch it without code changes.

`SFMC_ASSETS_EXECUTOR`: `multiprocess` (default: one process per step, steps in parallel, up to
`SFMC_ASSETS_MAX_CONCURRENT` at once) or `in_process` (all steps in the run's process: less start-up
cost on small machines and in tests) or `k8s` (one Kubernetes pod per step: `dagster_k8s.k8s_job_executor`,
from the `k8s` extra the image installs; step pods take the run launcher's settings, docs/deploy.md).
"""

import os

import dagster as dg


def executor_from_env() -> dg.ExecutorDefinition:
    kind = os.environ.get("SFMC_ASSETS_EXECUTOR", "multiprocess")
    if kind == "in_process":
        return dg.in_process_executor
    if kind == "multiprocess":
        max_concurrent = int(os.environ.get("SFMC_ASSETS_MAX_CONCURRENT", "0")) or None
        return dg.multiprocess_executor.configured({"max_concurrent": max_concurrent} if max_concurrent else {})
    if kind == "k8s":
        from dagster_k8s import k8s_job_executor  # type: ignore[import-not-found]

        return k8s_job_executor
    raise ValueError(f"SFMC_ASSETS_EXECUTOR={kind!r}: expected multiprocess, in_process or k8s")

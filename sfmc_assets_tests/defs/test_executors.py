"""`SFMC_ASSETS_EXECUTOR` picks the step executor at load time; `k8s` needs the `k8s` extra (in the lock)."""

import dagster as dg
import pytest

from sfmc_assets.definitions import build_definitions


def test_k8s_executor_loads_with_the_k8s_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster_k8s import k8s_job_executor  # the `k8s` extra, installed by requirements.lock

    monkeypatch.setenv("SFMC_ASSETS_EXECUTOR", "k8s")
    defs = build_definitions()
    dg.Definitions.validate_loadable(defs)
    jobs = [defs.resolve_job_def(job.name) for job in defs.jobs or []]
    jobs.append(defs.resolve_implicit_global_asset_job_def())  # what a UI materialisation or backfill runs
    assert jobs and all(job.executor_def is k8s_job_executor for job in jobs)


@pytest.mark.parametrize(("kind", "name"), [("multiprocess", "multiprocess"), ("in_process", "in_process")])
def test_the_other_executors(monkeypatch: pytest.MonkeyPatch, kind: str, name: str) -> None:
    monkeypatch.setenv("SFMC_ASSETS_EXECUTOR", kind)
    assert build_definitions().resolve_job_def("sfmc_daily_job").executor_def.name == name


def test_an_unknown_executor_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SFMC_ASSETS_EXECUTOR", "celery")
    with pytest.raises(ValueError, match="SFMC_ASSETS_EXECUTOR='celery': expected multiprocess, in_process or k8s"):
        build_definitions()

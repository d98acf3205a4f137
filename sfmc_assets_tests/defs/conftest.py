"""Fixtures for materialising real partitions through Dagster against the sandboxes."""

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest

from sfmc_assets.definitions import build_definitions, environment
from sfmc_assets.lib.config import ProjectConfig
from sfmc_assets.resources import (
    ExperiencePlatformResource,
    LakeResource,
    MarketingCloudResource,
    WarehouseResource,
)
from sfmc_assets.sandboxes.experience_platform import ExperiencePlatformSandbox
from sfmc_assets.sandboxes.marketing_cloud import MarketingCloudSandbox
from sfmc_assets_tests.conftest import write_discovery
from sfmc_assets_tests.instances import memory_instance

Materialize = Callable[..., dg.ExecuteInProcessResult]
_BUILT: dict[tuple[str, tuple[tuple[str, str], ...]], dg.Definitions] = {}


def definitions_for(config: ProjectConfig) -> dg.Definitions:
    """`build_definitions(config)`, built once per configuration and environment in this process, the way a
    code location builds them once for all its runs (each build loads the whole `defs/` folder)."""
    key = (config.model_dump_json(), environment())
    if key not in _BUILT:
        _BUILT[key] = build_definitions(config)
    return _BUILT[key]


def resources_for(sandbox: MarketingCloudSandbox, tmp_path: Path,
                  aep: ExperiencePlatformSandbox | None = None, **aep_config: object) -> dict[str, object]:
    """Resources of a test run: the sandboxes found through discovery files, as in production."""
    discovery = write_discovery(sandbox, tmp_path / "marketing_cloud.json")
    resources: dict[str, object] = {
        "marketing_cloud": MarketingCloudResource(
            sandbox_discovery_file=str(discovery), backoff_initial_s=0.05, max_retry_s=20.0, max_attempts=5,
        ),
        "lake": LakeResource(base_uri=str(tmp_path / "lake")),
        "warehouse": WarehouseResource(path=str(tmp_path / "warehouse.duckdb")),
    }
    # Without an Experience Platform sandbox the resource points nowhere: only publish assets would use it.
    aep_discovery = write_discovery(aep, tmp_path / "experience_platform.json") if aep else tmp_path / "no_aep.json"
    resources["experience_platform"] = aep_resource(aep_discovery, **aep_config)
    return resources


def aep_resource(discovery: Path, **config: object) -> ExperiencePlatformResource:
    """The Experience Platform resource of a test run: short polls and back-offs, `config` on top."""
    return ExperiencePlatformResource(sandbox_discovery_file=str(discovery), poll_initial_s=0.05,
                                      backoff_initial_s=0.05, **config)  # type: ignore[arg-type]


@pytest.fixture
def instance() -> dg.DagsterInstance:
    with memory_instance() as inst:
        yield inst


def make_materialize(
    sandbox: MarketingCloudSandbox, tmp_path: Path, instance: dg.DagsterInstance, config: ProjectConfig,
    aep: ExperiencePlatformSandbox | None = None, **aep_config: object,
) -> Materialize:
    defs = definitions_for(config)
    resources = resources_for(sandbox, tmp_path, aep, **aep_config)

    def run(partition: str, selection: str | None = None, **kw: object) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            list(defs.assets or []), partition_key=partition, resources=resources, instance=instance,
            selection=selection, raise_on_error=False, **kw,  # type: ignore[arg-type]
        )

    return run


@pytest.fixture
def materialize(mc_sandbox: MarketingCloudSandbox, aep_sandbox: ExperiencePlatformSandbox, tmp_path: Path,
                instance: dg.DagsterInstance, config: ProjectConfig) -> Materialize:
    return make_materialize(mc_sandbox, tmp_path, instance, config, aep_sandbox)


@pytest.fixture
def materialize_fresh(fresh_mc_sandbox: MarketingCloudSandbox, aep_sandbox: ExperiencePlatformSandbox,
                      tmp_path: Path, instance: dg.DagsterInstance, config: ProjectConfig) -> Materialize:
    return make_materialize(fresh_mc_sandbox, tmp_path, instance, config, aep_sandbox)

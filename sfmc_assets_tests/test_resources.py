"""The service resources hand out clients for a run and close them when the run's resources are torn down.

A client left open keeps its pooled connections (sockets to Marketing Cloud or Platform) for the life
of the process: in a code server or a forkserver that serves many runs, they would pile up.
"""

from pathlib import Path

import dagster as dg
import requests

from sfmc_assets.lib.config import ProjectConfig
from sfmc_assets.lib.marketing_cloud.rowset import discover_fields
from sfmc_assets.resources import ExperiencePlatformResource, MarketingCloudResource
from sfmc_assets.sandboxes.experience_platform import ExperiencePlatformSandbox
from sfmc_assets.sandboxes.marketing_cloud import MarketingCloudSandbox
from sfmc_assets_tests.conftest import write_discovery


def _open_connections(http: requests.Session) -> int:
    return sum(len(adapter.poolmanager.pools) for adapter in set(http.adapters.values()))


def test_clients_handed_out_during_a_run_are_closed_at_teardown(
    mc_sandbox: MarketingCloudSandbox, aep_sandbox: ExperiencePlatformSandbox, config: ProjectConfig,
    tmp_path: Path,
) -> None:
    resources = {
        "mc": MarketingCloudResource(sandbox_discovery_file=str(write_discovery(mc_sandbox, tmp_path / "mc.json"))),
        "aep": ExperiencePlatformResource(
            sandbox_discovery_file=str(write_discovery(aep_sandbox, tmp_path / "aep.json"))),
    }
    contacts = config.data_extension("contacts")
    with dg.build_resources(resources) as built:
        mc, aep = built.mc.get_client(), built.aep.get_client()
        discover_fields(mc, contacts.external_key)
        assert aep.get_dataset(contacts.aep.dataset)
        assert _open_connections(mc.session.http) >= 1 and _open_connections(aep.session.http) >= 1
    assert _open_connections(mc.session.http) == 0
    assert _open_connections(aep.session.http) == 0

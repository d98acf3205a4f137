"""The code location: everything under `defs/` (autoloaded, as `dg` projects are), policies applied once.

Each folder of `defs/` contributes its part, built from the configuration in force (`lib/config.py`):
raw, clean, publish and segment assets, jobs and schedules, sensors, resources. A module added under
`defs/` (`dg scaffold defs dagster.asset my_asset.py`) is loaded with no edit here. What applies to
every asset (freshness on published and segment tables) and to every run (the executor) is set here.

`build_definitions(config)` loads the same folder with another configuration (tests use it to add a
fourth data extension without code).
"""

import datetime as dt
import os
import warnings
from pathlib import Path

import dagster as dg

from sfmc_assets.defs.executors import executor_from_env
from sfmc_assets.defs.experience_platform.assets import PUBLISH_GROUP
from sfmc_assets.defs.segments.assets import SEGMENTS_GROUP
from sfmc_assets.lib.config import ProjectConfig, config_in_force
from sfmc_assets.lib.settings import config_path

#: Published and segment tables are due every morning: the schedule runs at 02:00 UTC, so by 06:00 UTC
#: yesterday's data should be out; the UI flags them when they are not.
DAILY_FRESHNESS = dg.FreshnessPolicy.cron(deadline_cron="0 6 * * *", lower_bound_delta=dt.timedelta(hours=24))


def build_definitions(config: ProjectConfig | None = None) -> dg.Definitions:
    """The `defs/` folder loaded with `config` (default: the configuration file), policies applied."""
    with warnings.catch_warnings(), config_in_force(config):
        # Used on purpose, each explained where used: single-run backfills (Beta), per-day check results
        # (Preview), pandera's TableSchema for the catalog (Beta), map_resolved_asset_specs (Preview).
        warnings.simplefilter("ignore", dg.BetaWarning)
        warnings.simplefilter("ignore", dg.PreviewWarning)
        loaded = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
        with_executor = dg.Definitions.merge(loaded, dg.Definitions(executor=executor_from_env()))
        return with_executor.map_resolved_asset_specs(
            func=lambda spec: dg.apply_freshness_policy(spec, DAILY_FRESHNESS, overwrite_existing=False),
            selection=dg.AssetSelection.groups(PUBLISH_GROUP, SEGMENTS_GROUP),
        )


_BUILT: dict[tuple[object, ...], dg.Definitions] = {}


def _identity() -> tuple[object, ...]:
    """What the definitions are built from: the configuration file as it is now, and the environment."""
    path = config_path()
    stamp = path.stat().st_mtime_ns if path.exists() else None
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(("SFMC_", "AEP_", "DAGSTER_"))))
    return (str(path), stamp, env)


@dg.definitions
def defs() -> dg.Definitions:
    """The project's definitions, built once per process for a given configuration file and environment.

    Dagster loads the code location again in every run and step process; with step processes forked from
    a server that already built them (`sfmc_assets.preload`), that load is a lookup here.
    """
    key = _identity()
    if key not in _BUILT:
        _BUILT.clear()
        _BUILT[key] = build_definitions()
    return _BUILT[key]

"""The code location: every asset, check, job, schedule and resource, built from the configuration.

`defs` is what `dagster dev`, `dg`, `workspace.yaml` and `[tool.dagster]` load. Policies that apply to
every asset (owners, tags, freshness) are applied here, once, rather than in each factory.
`build_definitions(config)` builds the same graph for another configuration (tests use it to add a
fourth data extension without code).
"""

import warnings

import dagster as dg

from sfmc_assets.defs.clean.assets import build_clean_asset
from sfmc_assets.defs.executors import executor_from_env
from sfmc_assets.defs.marketing_cloud.assets import build_raw_asset
from sfmc_assets.defs.schedules import build_daily_job, build_daily_schedule
from sfmc_assets.lib.config import ProjectConfig, load_config
from sfmc_assets.resources import lake_resource, marketing_cloud_resource


def build_definitions(config: ProjectConfig | None = None) -> dg.Definitions:
    with warnings.catch_warnings():
        # Used on purpose, each explained where used: single-run backfills (Beta), per-day check results
        # (Preview), pandera's TableSchema for the catalog (Beta).
        warnings.simplefilter("ignore", dg.BetaWarning)
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return _build(config or load_config())


def _build(config: ProjectConfig) -> dg.Definitions:
    raw_assets = [build_raw_asset(de, config) for de in config.data_extensions]
    clean_assets = [build_clean_asset(de, config) for de in config.data_extensions]
    # One daily job per partitions definition (data extensions may start on different days).
    jobs, schedules = [], []
    for start in sorted({config.start_date_of(de) for de in config.data_extensions}):
        names = [de.name for de in config.data_extensions if config.start_date_of(de) == start]
        job_name = "sfmc_daily_job" if not jobs else f"sfmc_daily_job_from_{start:%Y%m%d}"
        selection = dg.AssetSelection.assets(
            *(a.key for a in [*raw_assets, *clean_assets] if a.key.path[-1] in names)
        )
        job = build_daily_job(job_name, selection)
        jobs.append(job)
        schedules.append(build_daily_schedule(job, config.lookback_days, start))
    return dg.Definitions(
        assets=[*raw_assets, *clean_assets],
        jobs=jobs,
        schedules=schedules,
        executor=executor_from_env(),
        resources={"marketing_cloud": marketing_cloud_resource(), "lake": lake_resource()},
    )


defs = build_definitions()

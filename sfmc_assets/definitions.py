"""The code location: every asset, check, job, schedule and resource, built from the configuration.

`defs` is what `dagster dev`, `dg`, `workspace.yaml` and `[tool.dagster]` load. Policies that apply to
every asset (owners, tags, freshness) are applied here, once, rather than in each factory.
`build_definitions(config)` builds the same graph for another configuration (tests use it to add a
fourth data extension without code).
"""

import datetime as dt
import warnings

import dagster as dg

from sfmc_assets.defs.alerts import notify_on_run_failure
from sfmc_assets.defs.clean.assets import build_clean_asset
from sfmc_assets.defs.executors import executor_from_env
from sfmc_assets.defs.experience_platform.assets import PUBLISH_GROUP, build_publish_asset
from sfmc_assets.defs.marketing_cloud.assets import build_raw_asset
from sfmc_assets.defs.schedules import build_daily_job, build_daily_schedule
from sfmc_assets.defs.segments.assets import SEGMENTS_GROUP, build_segment_assets
from sfmc_assets.lib.config import ProjectConfig, load_config
from sfmc_assets.resources import (
    experience_platform_resource,
    lake_resource,
    marketing_cloud_resource,
    warehouse_resource,
)

#: Published and segment tables are due every morning: the schedule runs at 02:00 UTC, so by 06:00 UTC
#: yesterday's data should be out; the UI flags them when they are not.
DAILY_FRESHNESS = dg.FreshnessPolicy.cron(deadline_cron="0 6 * * *", lower_bound_delta=dt.timedelta(hours=24))


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
    publish_assets = [a for de in config.data_extensions if (a := build_publish_asset(de, config)) is not None]
    segment_assets = build_segment_assets(config)
    assets = [*raw_assets, *clean_assets, *publish_assets, *segment_assets]
    # One daily job per partitions definition (data extensions may start on different days).
    jobs, schedules = [], []
    by_start: dict[object, list[dg.AssetsDefinition]] = {}
    for asset in assets:
        by_start.setdefault(asset.partitions_def, []).append(asset)
    for partitions_def, members in by_start.items():
        start = partitions_def.start.date()  # type: ignore[union-attr]
        job_name = "sfmc_daily_job" if not jobs else f"sfmc_daily_job_from_{start:%Y%m%d}"
        job = build_daily_job(job_name, dg.AssetSelection.assets(*members))
        jobs.append(job)
        schedules.append(build_daily_schedule(job, config.lookback_days, start))
    defs = dg.Definitions(
        assets=assets,
        jobs=jobs,
        schedules=schedules,
        sensors=[notify_on_run_failure],
        executor=executor_from_env(),
        resources={"marketing_cloud": marketing_cloud_resource(), "lake": lake_resource(),
                   "warehouse": warehouse_resource(), "experience_platform": experience_platform_resource()},
    )
    return defs.map_resolved_asset_specs(
        func=lambda spec: dg.apply_freshness_policy(spec, DAILY_FRESHNESS, overwrite_existing=False),
        selection=dg.AssetSelection.groups(PUBLISH_GROUP, SEGMENTS_GROUP),
    )


defs = build_definitions()

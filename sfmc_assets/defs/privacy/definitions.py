"""What the privacy folder contributes: the erasure job, the retention job and its daily schedule."""

import dagster as dg

from sfmc_assets.defs.privacy.jobs import build_erasure_job, build_retention_job, build_retention_schedule
from sfmc_assets.lib.config import current_config


@dg.definitions
def privacy_jobs() -> dg.Definitions:
    config = current_config()
    retention = build_retention_job(config)
    return dg.Definitions(jobs=[build_erasure_job(config), retention],
                          schedules=[build_retention_schedule(retention)])

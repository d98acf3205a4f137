"""The resources every asset uses, bound from the environment (real services, or the local sandboxes)."""

import dagster as dg

from sfmc_assets.resources import (
    experience_platform_resource,
    lake_resource,
    marketing_cloud_resource,
    warehouse_resource,
)


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={
        "marketing_cloud": marketing_cloud_resource(),
        "lake": lake_resource(),
        "warehouse": warehouse_resource(),
        "experience_platform": experience_platform_resource(),
    })

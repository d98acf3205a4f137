"""What the Marketing Cloud folder contributes: one raw asset per configured data extension."""

import dagster as dg

from sfmc_assets.defs.marketing_cloud.assets import build_raw_asset
from sfmc_assets.lib.config import current_config


@dg.definitions
def raw_assets() -> dg.Definitions:
    config = current_config()
    return dg.Definitions(assets=[build_raw_asset(de, config) for de in config.data_extensions])

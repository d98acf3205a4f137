"""What the clean folder contributes: one gated clean asset per configured data extension."""

import dagster as dg

from sfmc_assets.defs.clean.assets import build_clean_asset
from sfmc_assets.lib.config import current_config


@dg.definitions
def clean_assets() -> dg.Definitions:
    config = current_config()
    return dg.Definitions(assets=[build_clean_asset(de, config) for de in config.data_extensions])

"""What the catalog folder contributes: `sfmc/catalog`, materialised on demand."""

import dagster as dg

from sfmc_assets.defs.catalog.assets import build_catalog_asset
from sfmc_assets.lib.config import current_config


@dg.definitions
def catalog_assets() -> dg.Definitions:
    return dg.Definitions(assets=[build_catalog_asset(current_config())])

"""What the deletes folder contributes: `sfmc/deletes/<name>` for full snapshots and key reconciliation."""

import dagster as dg

from sfmc_assets.defs.deletes.assets import build_deletes_asset, has_deletes
from sfmc_assets.lib.config import current_config


@dg.definitions
def deletes_assets() -> dg.Definitions:
    config = current_config()
    return dg.Definitions(assets=[build_deletes_asset(de, config) for de in config.data_extensions
                                  if has_deletes(de)])

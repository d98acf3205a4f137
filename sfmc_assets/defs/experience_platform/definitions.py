"""What the Experience Platform folder contributes: a publish asset per data extension with an `aep:` block."""

import dagster as dg

from sfmc_assets.defs.experience_platform.assets import build_publish_asset
from sfmc_assets.lib.config import current_config


@dg.definitions
def publish_assets() -> dg.Definitions:
    config = current_config()
    return dg.Definitions(
        assets=[a for de in config.data_extensions if (a := build_publish_asset(de, config)) is not None]
    )

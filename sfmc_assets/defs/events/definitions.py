"""What the events folder contributes: raw, clean and (with `tracking_events.aep`) publish assets per type."""

import dagster as dg

from sfmc_assets.defs.events.assets import build_clean_asset, build_raw_asset
from sfmc_assets.defs.events.publish import build_publish_asset
from sfmc_assets.lib.config import current_config
from sfmc_assets.lib.events import configured


@dg.definitions
def event_assets() -> dg.Definitions:
    config = current_config()
    assets: list[dg.AssetsDefinition] = []
    for event in configured(config):
        assets += [build_raw_asset(event, config), build_clean_asset(event, config)]
        if (published := build_publish_asset(event, config)) is not None:
            assets.append(published)
    return dg.Definitions(assets=assets)

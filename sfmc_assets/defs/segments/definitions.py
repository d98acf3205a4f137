"""What the segments folder contributes: the segment-ready tables, when the configuration has `segments:`."""

import dagster as dg

from sfmc_assets.defs.segments.assets import build_segment_assets
from sfmc_assets.lib.config import current_config


@dg.definitions
def segment_assets() -> dg.Definitions:
    return dg.Definitions(assets=build_segment_assets(current_config()))

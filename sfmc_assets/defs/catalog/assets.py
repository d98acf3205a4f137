"""`sfmc/catalog`: the account's data extensions, their fields and row counts, as materialisation metadata.

Materialised on demand (no schedule, no automation): a user browses the tenant from the Dagster UI before
adding a data extension to the configuration, as `sfmc-assets discover` does on the command line. The
metadata holds a Markdown table (one row per data extension, with whether and as what it is configured)
and the whole description as JSON; nothing is written to the lake, and no row values are read.
"""

import dagster as dg
from pydantic import Field

from sfmc_assets.defs.marketing_cloud.assets import SFMC_POOL
from sfmc_assets.lib import discovery
from sfmc_assets.lib.config import ProjectConfig
from sfmc_assets.lib.marketing_cloud import MarketingCloudError
from sfmc_assets.resources import MarketingCloudResource

CATALOG_KEY = dg.AssetKey(["sfmc", "catalog"])
CATALOG_GROUP = "sfmc_catalog"


class CatalogConfig(dg.Config):
    search: str = Field(default="", description="Part of the names, keys or descriptions to list (Marketing "
                                                "Cloud searches by term; empty lists every data extension).")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def catalog_markdown(found: list[discovery.DiscoveredDataExtension], configured: dict[str, str]) -> str:
    """One row per data extension: key, name, rows, sendable, fields, key, delta candidates, configured as."""
    lines = ["| external key | name | rows | sendable | fields | primary key | delta candidates | configured as |",
             "|---|---|---|---|---|---|---|---|"]
    for de in found:
        s = de.summary
        cells = [s.key, s.name, "?" if s.row_count is None else f"{s.row_count:,}",
                 {True: "yes", False: "no", None: "?"}[s.sendable], str(len(de.fields)),
                 ", ".join(de.primary_key) or "(none)", ", ".join(de.delta_candidates) or "(none: sync: full)",
                 f"`{configured[s.key.lower()]}`" if s.key.lower() in configured else "—"]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def build_catalog_asset(config: ProjectConfig) -> dg.AssetsDefinition:
    configured = {de.external_key.lower(): de.name for de in config.data_extensions}

    @dg.asset(
        key=CATALOG_KEY,
        group_name=CATALOG_GROUP,
        kinds={"salesforce"},
        owners=sorted({o for de in config.data_extensions for o in de.owners}) or None,
        tags={"layer": "catalog", "domain": "marketing"},
        description="The Marketing Cloud account's data extensions (external key, name, row count, sendable, "
        "fields with types, lengths, nullability and primary key, candidate delta columns) and which are "
        "configured. Materialise it to browse the account before adding a data extension "
        "(docs/discover.md).",
        pool=SFMC_POOL,
    )
    def _catalog(context: dg.AssetExecutionContext, config: CatalogConfig,
                 marketing_cloud: MarketingCloudResource) -> dg.MaterializeResult:
        client = marketing_cloud.get_client(context.log)
        try:
            found = discovery.describe_all(client, config.search)
        except MarketingCloudError as exc:
            raise dg.Failure(description=f"Listing the account's data extensions (search {config.search!r}) "
                             f"failed: {exc}", allow_retries=False) from None
        return dg.MaterializeResult(metadata={
            "data_extensions": len(found),
            "configured": sum(de.key.lower() in configured for de in found),
            "search": config.search or "(all)",
            "catalog": dg.MetadataValue.md(catalog_markdown(found, configured)),
            "catalog_json": dg.MetadataValue.json([
                {**de.as_json(), "configured_as": configured.get(de.key.lower())} for de in found]),
        })

    return _catalog

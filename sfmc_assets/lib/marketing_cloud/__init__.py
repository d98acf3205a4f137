"""The production Marketing Cloud client: OAuth, retries, rowset paging and typed Polars pages.

It knows nothing about Dagster or the sandbox: point it at a real tenant's authentication base URI or at
the local sandbox, it speaks the same protocol to both.
"""

from sfmc_assets.lib.marketing_cloud.client import (
    MarketingCloudClient,
    RetrySettings,
    normalize_auth_base_uri,
)
from sfmc_assets.lib.marketing_cloud.errors import (
    AuthenticationError,
    DataExtensionNotFoundError,
    InconsistentReadError,
    MarketingCloudError,
    SchemaDriftError,
)

__all__ = [
    "AuthenticationError",
    "DataExtensionNotFoundError",
    "InconsistentReadError",
    "MarketingCloudClient",
    "MarketingCloudError",
    "RetrySettings",
    "SchemaDriftError",
    "normalize_auth_base_uri",
]

"""The production Experience Platform client and the XDM mapping of canonical frames.

Nothing here knows about Dagster or the sandbox: point the client at a real org (IMS + platform.adobe.io) or
at the local sandbox's `discovery()`, it speaks the same protocol to both.
"""

from sfmc_assets.lib.experience_platform.client import (
    LABEL_TAG,
    SMALL_FILE_LIMIT_BYTES,
    ExperiencePlatformClient,
    PublishResult,
    RetrySettings,
)
from sfmc_assets.lib.experience_platform.errors import (
    AccessDeniedError,
    AuthenticationError,
    BatchCreateError,
    BatchFailedError,
    BatchNotFoundError,
    BatchStuckError,
    DatasetNotFoundError,
    ExperiencePlatformError,
    FileTooLargeError,
)
from sfmc_assets.lib.experience_platform.xdm import (
    EventTypeSpec,
    IdentitySpec,
    XdmMapping,
    XdmMappingError,
    column_lineage,
    to_parquet_bytes,
    to_parquet_files,
    to_xdm,
)

__all__ = [
    "LABEL_TAG",
    "SMALL_FILE_LIMIT_BYTES",
    "AccessDeniedError",
    "AuthenticationError",
    "BatchCreateError",
    "BatchFailedError",
    "BatchNotFoundError",
    "BatchStuckError",
    "DatasetNotFoundError",
    "EventTypeSpec",
    "ExperiencePlatformClient",
    "ExperiencePlatformError",
    "FileTooLargeError",
    "IdentitySpec",
    "PublishResult",
    "RetrySettings",
    "XdmMapping",
    "XdmMappingError",
    "column_lineage",
    "to_parquet_bytes",
    "to_parquet_files",
    "to_xdm",
]

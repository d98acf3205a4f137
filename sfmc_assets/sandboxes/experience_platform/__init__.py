"""A faithful local Adobe Experience Platform (IMS, gateway, Catalog, Batch Ingestion) for tests and demos.

Start it with ``ExperiencePlatformSandbox(state_dir).start()`` (or as a context manager) and point the
publisher at ``discovery()``; ``python -m sfmc_assets.sandboxes.experience_platform`` serves it standalone.
See ``server.py`` for routes and lifecycle, ``schemas.py`` for the seeded datasets and validation rules,
``faults.py`` for fault injection.
"""

from .faults import Fault
from .schemas import (
    ACTIVITIES_SCHEMA,
    CONTACTS_SCHEMA,
    ENGAGEMENT_SCHEMA,
    EVENT_CLASS,
    PROFILE_CLASS,
    SEED_DATASETS,
    TENANT_ID,
    schema_field_paths,
)
from .server import DEFAULT_MAX_FILE_BYTES, ExperiencePlatformSandbox

__all__ = [
    "ACTIVITIES_SCHEMA",
    "CONTACTS_SCHEMA",
    "DEFAULT_MAX_FILE_BYTES",
    "ENGAGEMENT_SCHEMA",
    "EVENT_CLASS",
    "PROFILE_CLASS",
    "SEED_DATASETS",
    "TENANT_ID",
    "ExperiencePlatformSandbox",
    "Fault",
    "schema_field_paths",
]

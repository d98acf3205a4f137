"""Which columns hold personal data: masked wherever values leave the data (previews, failure samples).

Materialisation metadata and check results are stored verbatim in Dagster's event log and shown in the
UI, which is no place for contact data.
"""

from collections.abc import Sequence

import polars as pl

from sfmc_assets.lib.config import DataExtensionConfig
from sfmc_assets.lib.marketing_cloud.fields import FieldSpec

#: Canonical roles holding personal data.
PII_ROLES = ("email", "first_name", "last_name", "phone")
#: Marketing Cloud field types that hold personal data whatever the column is called.
PII_TYPES = ("EmailAddress", "Phone")


def personal_columns(de: DataExtensionConfig, fields: Sequence[FieldSpec]) -> list[str]:
    """The clean columns of `de` that hold personal data (roles, and e-mail and phone fields)."""
    names = de.clean_names(fields)
    typed = [names[f.name] for f in fields if f.type in PII_TYPES]
    roles = [r for r in PII_ROLES if r in names.values()]
    return list(dict.fromkeys([*roles, *typed]))


def personal_source_columns(de: DataExtensionConfig, fields: Sequence[FieldSpec]) -> list[str]:
    """The same, as the raw layer's source column names."""
    personal = set(personal_columns(de, fields))
    return [f.name for f in fields if de.clean_name(f.name) in personal]


def mask(column: str) -> pl.Expr:
    """A personal column reduced to its first character (`j***`), nulls kept: enough to recognise a row."""
    c = pl.col(column).cast(pl.String)
    return pl.when(c.is_null()).then(None).otherwise(c.str.slice(0, 1) + pl.lit("***")).alias(column)

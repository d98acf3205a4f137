"""Which columns hold personal data, and what leaves the pipeline of them: masked, hashed, or not read at all.

Materialisation metadata and check results are stored verbatim in Dagster's event log and shown in the
UI, which is no place for contact data: previews and failure samples mask every personal column. What is
published can carry a hash instead of the clear value (`privacy.hash`), and columns nothing maps can be
left in Marketing Cloud (`privacy.keep_unmapped: false`).
"""

import re
from collections.abc import Iterable, Sequence

import duckdb
import polars as pl
from anyascii import anyascii

from sfmc_assets.lib.config import DataExtensionConfig
from sfmc_assets.lib.marketing_cloud.fields import FieldSpec

#: Canonical roles holding personal data (the contact key, which names a person too, is added per data
#: extension by `personal_columns`; `sfmc-assets discover` shows keys, which a person configuring needs).
PII_ROLES = ("email", "first_name", "last_name", "phone")
#: Marketing Cloud field types that hold personal data whatever the column is called.
PII_TYPES = ("EmailAddress", "Phone")
#: A SHA-256 in hex: 64 characters, what a hashed column holds.
SHA256_HEX_LENGTH = 64
#: Name stems (lower-case ASCII letters and digits) of columns that hold personal data whatever their type:
#: a Text column `FirstName` or `Mobile Number` in a data extension without a `kind` is masked too.
PERSONAL_NAME_STEMS = ("email", "mail", "phone", "mobile", "firstname", "givenname", "forename", "prenom",
                       "lastname", "surname", "familyname", "fullname", "birth", "street", "postcode", "zipcode")


def _stem(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", anyascii(name).lower())


def named_personal(fields: Iterable[FieldSpec]) -> list[str]:
    """Source columns whose type or name says they hold personal data (e-mail, phone, names, birth...)."""
    return [f.name for f in fields
            if f.type in PII_TYPES or any(stem in _stem(f.name) for stem in PERSONAL_NAME_STEMS)]


def contact_key_column(de: DataExtensionConfig) -> str | None:
    """The source column naming the person a row belongs to: `privacy.contact_key`, else the `contact_key`
    role's column; None when the data extension has neither (its rows are not matched to people)."""
    return de.privacy.contact_key or de.columns.get("contact_key")


def personal_columns(de: DataExtensionConfig, fields: Sequence[FieldSpec]) -> list[str]:
    """The clean columns of `de` that hold personal data: roles, e-mail and phone fields and columns named
    like personal data, the contact key, the columns the configuration declares personal or hashes."""
    names = de.clean_names(fields)
    typed = [names[f] for f in named_personal(fields)]
    roles = [r for r in PII_ROLES if r in names.values()]
    key = contact_key_column(de)
    declared = [de.clean_name(c) for c in (*([key] if key else []), *de.privacy.personal)]
    present = set(names.values())
    return list(dict.fromkeys([*roles, *typed, *(c for c in declared if c in present), *de.privacy.hash]))


def personal_source_columns(de: DataExtensionConfig, fields: Sequence[FieldSpec]) -> list[str]:
    """The same, as the raw layer's source column names."""
    personal = set(personal_columns(de, fields))
    return [f.name for f in fields if de.clean_name(f.name) in personal]


def mask(column: str) -> pl.Expr:
    """A personal column reduced to its first character (`j***`), nulls kept: enough to recognise a row."""
    c = pl.col(column).cast(pl.String)
    return pl.when(c.is_null()).then(None).otherwise(c.str.slice(0, 1) + pl.lit("***")).alias(column)


def mask_values(values: Iterable[object]) -> list[str]:
    """Values reduced to their first character (what previews show of a personal column)."""
    return [f"{str(v)[:1]}***" if v is not None else "" for v in values]


# -- hashing -----------------------------------------------------------------------------------------


def normalise_for_hash(column: pl.Expr) -> pl.Expr:
    """Adobe's rule for hashed e-mail identities (`Email_LC_SHA256`): leading and trailing spaces trimmed,
    lower-cased, no salt (https://experienceleague.adobe.com/en/docs/experience-platform/destinations/
    catalog/social/facebook#email-hashing-requirements). An empty result is no identity: null."""
    text = column.cast(pl.String).str.strip_chars().str.to_lowercase()
    return pl.when(text.str.len_chars() > 0).then(text).otherwise(None)


def sha256_hex(values: pl.Series) -> pl.Series:
    """SHA-256 of each UTF-8 string as lower-case hex (nulls stay null), computed in bulk by DuckDB."""
    frame = pl.DataFrame({"v": values.cast(pl.String)})
    with duckdb.connect() as con:
        con.register("vals", frame)
        return con.execute("SELECT sha256(v) AS h FROM vals").pl().get_column("h").alias(values.name)


def hash_columns(frame: pl.DataFrame, columns: Iterable[str]) -> pl.DataFrame:
    """`columns` of `frame` replaced by the SHA-256 of their normalised values."""
    present = [c for c in columns if c in frame.columns]
    if not present or frame.is_empty():
        return frame.with_columns(pl.col(c).cast(pl.String) for c in present)
    normalised = frame.select(normalise_for_hash(pl.col(c)).alias(c) for c in present)
    return frame.with_columns(sha256_hex(normalised.get_column(c)) for c in present)


def for_publishing(frame: pl.DataFrame, de: DataExtensionConfig) -> pl.DataFrame:
    """The clean rows as they may leave for Experience Platform: `privacy.hash` columns hashed (once: the
    `hash_in_lake` ones already are)."""
    return hash_columns(frame, [c for c in de.privacy.hash if c not in de.privacy.hash_in_lake])


# -- minimisation and hashing before the lake -------------------------------------------------------


def _mapped_sources(de: DataExtensionConfig, fields: Sequence[FieldSpec]) -> set[str]:
    """Lower-cased source columns something downstream reads (key, delta, roles, renames, rules, XDM
    mapping, privacy)."""
    wanted_clean = set(de.rules) | set(de.privacy.hash) | set(de.aep.source_columns() if de.aep else ())
    sources = {*de.key_columns(fields), *de.columns.values(), *de.rename,
               *([de.delta_column] if de.delta_column else []),
               *([de.privacy.contact_key] if de.privacy.contact_key else [])}
    sources |= {f.name for f in fields if de.clean_name(f.name) in wanted_clean}
    return {s.lower() for s in sources}


def lake_fields(de: DataExtensionConfig, fields: Sequence[FieldSpec]) -> tuple[FieldSpec, ...]:
    """The fields a raw partition keeps: all of them, or only the mapped ones (`keep_unmapped: false`);
    columns hashed before the lake are described as what they then hold (text of 64 characters)."""
    if not de.privacy.keep_unmapped:
        mapped = _mapped_sources(de, fields)
        fields = [f for f in fields if f.name.lower() in mapped]
    hashed = set(de.privacy.hash_in_lake)
    return tuple(
        f.model_copy(update={"type": "Text", "length": SHA256_HEX_LENGTH, "scale": None})
        if de.clean_name(f.name) in hashed else f
        for f in fields
    )


def lake_hashed_sources(de: DataExtensionConfig, fields: Sequence[FieldSpec]) -> list[str]:
    """Source columns hashed before the lake."""
    return [f.name for f in fields if de.clean_name(f.name) in de.privacy.hash_in_lake]


def person_columns(de: DataExtensionConfig, fields: Sequence[FieldSpec]) -> list[str]:
    """The columns that say whose row it is: the contact key and the e-mail columns, under their source
    names (raw) and their clean names (clean, quarantine, deletes). Erasure and suppression match them."""
    key = contact_key_column(de)
    emails = [f.name for f in fields if f.type == "EmailAddress"]
    if de.kind == "contacts" and "email" in de.columns:
        emails.append(de.columns["email"])
    sources = list(dict.fromkeys([*([key] if key else []), *emails]))
    return list(dict.fromkeys([*sources, *(de.clean_name(s) for s in sources)]))

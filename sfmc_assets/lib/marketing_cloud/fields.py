"""Data extension fields as Marketing Cloud describes them, and how they are named in the clean layer.

A field's type is one of Marketing Cloud's field types. The SOAP `FieldType` enumeration has eight
(Text, Number, Date, Boolean, EmailAddress, Phone, Decimal, Locale); connectors that read the REST
metadata report more (Databricks' reference lists LongNumber, for example:
https://docs.databricks.com/aws/en/ingestion/lakeflow-connect/sfmc-reference). A type this code does not
know is kept as it was reported and read as text, so a new type never stops discovery or a read.
"""

import re

from anyascii import anyascii
from pydantic import BaseModel, ConfigDict, Field

#: The field types whose values this code parses; every other type (known or not) is text.
KNOWN_TYPES = ("Text", "Number", "Date", "Boolean", "EmailAddress", "Phone", "Decimal", "Locale")


class FieldSpec(BaseModel):
    """A data extension field (`/data/v1/customobjects/{id}/fields`, or the configuration's `fields:`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    type: str = Field(min_length=1, description="Marketing Cloud field type; unknown types are read as text.")
    length: int | None = None
    scale: int | None = None
    is_primary_key: bool = False
    is_nullable: bool = True

    @property
    def known_type(self) -> bool:
        return self.type in KNOWN_TYPES

    def describe(self) -> str:
        """`Text(254)`, `Decimal(18,2)`, `Boolean`: the type as the configuration writes it."""
        if self.type == "Decimal":
            return f"Decimal({self.length or 18},{self.scale or 0})"
        return f"{self.type}({self.length})" if self.length and self.type not in ("Number", "Date", "Boolean") \
            else self.type


_COMPACT = re.compile(
    r"^(?P<type>[A-Za-z]+)(?:\((?P<length>\d+)(?:\s*,\s*(?P<scale>\d+))?\))?(?P<flags>(?:\s+[a-z-]+)*)\s*$"
)


def parse_compact(name: str, spec: object) -> dict[str, object]:
    """`EmailAddress(254) required` / `Decimal(18,2)` / `Text(254) primary-key` -> FieldSpec fields."""
    if isinstance(spec, dict):
        return {"name": name, **spec}
    m = _COMPACT.match(str(spec))
    if not m:
        raise ValueError(f"field {name}: cannot read {spec!r}; expected e.g. 'Text(254) primary-key'")
    flags = set(m["flags"].split())
    unknown = flags - {"primary-key", "required"}
    if unknown:
        raise ValueError(f"field {name}: unknown flag(s) {sorted(unknown)}; use primary-key, required")
    return {
        "name": name,
        "type": m["type"],
        "length": int(m["length"]) if m["length"] else None,
        "scale": int(m["scale"]) if m["scale"] else None,
        "is_primary_key": "primary-key" in flags,
        "is_nullable": not ({"primary-key", "required"} & flags),
    }


_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NOT_WORD = re.compile(r"[^0-9a-zA-Z]+")


def snake_case(name: str) -> str:
    """A source column name as a clean column name: `SubscriberKey` -> `subscriber_key`, `LinkURL` ->
    `link_url`, `Order ID` -> `order_id`, `Prénom` -> `prenom`, `Ørsted` -> `orsted` (transliterated by
    anyascii, not dropped).

    Marketing Cloud field names may hold spaces, punctuation and accents; clean names are lower-case ASCII
    words joined by `_`, never starting with a digit (they become Parquet, DuckDB and XDM-mapping names).
    """
    ascii_name = anyascii(name)
    words = _NOT_WORD.sub("_", _BOUNDARY.sub("_", ascii_name)).strip("_").lower()
    words = re.sub("_+", "_", words) or "column"
    return f"c_{words}" if words[0].isdigit() else words

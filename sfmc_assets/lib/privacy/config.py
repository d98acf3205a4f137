"""The `privacy:` block of a data extension's configuration, and the checks it gets at load time.

Kept apart from lib/config.py (which includes it as `DataExtensionConfig.privacy` and calls the checks
from its validators) so the personal-data settings read in one place. docs/personal-data.md says what
each key does and why.
"""

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:  # lib/config.py imports this module: the types only, for the checks' signatures
    from sfmc_assets.lib.config import DataExtensionConfig, ProjectConfig

#: Identity namespaces that hold a value in clear: a hashed column published under one is a mistake.
_CLEAR_NAMESPACES = frozenset({"email", "phone", "phone_e.164"})
_TEXT = ("Text", "EmailAddress", "Phone")


class PrivacyConfig(BaseModel):
    """Personal data of one data extension: whose rows they are, how long raw copies live, what leaves hashed.

    Everything here is optional.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    contact_key: str | None = Field(
        default=None, description="Source column naming the person a row belongs to (erasure and suppression "
        "match it); default: the column mapped to the `contact_key` role.",
    )
    personal: tuple[str, ...] = Field(
        default=(), description="More source columns holding personal data (masked like e-mails and phones).",
    )
    retention_days: int | None = Field(
        default=None, ge=1, description="Raw and quarantine partitions older than this many days are deleted.",
    )
    clean_retention_days: int | None = Field(
        default=None, ge=1, description="Clean partitions older than this many days are deleted (default: kept).",
    )
    hash: dict[str, Literal["sha256"]] = Field(
        default_factory=dict, description="Clean column -> `sha256`: published as the SHA-256 of the trimmed, "
        "lower-cased value (Adobe's rule for hashed identities).",
    )
    hash_in_lake: tuple[str, ...] = Field(
        default=(), description="Columns of `hash` hashed before the lake too (raw onwards): never stored in clear.",
    )
    keep_unmapped: bool = Field(
        default=True, description="false: columns nothing maps (key, delta, roles, renames, rules, XDM mapping, "
        "privacy) are not read from Marketing Cloud at all.",
    )

    @model_validator(mode="after")
    def _hash_to_hash(self) -> "PrivacyConfig":
        extra = sorted(set(self.hash_in_lake) - set(self.hash))
        if extra:
            raise ValueError(f"privacy.hash_in_lake names {extra}, which privacy.hash does not hash")
        return self


def check_privacy(de: "DataExtensionConfig") -> None:
    """Named columns exist, hashed columns are text nothing downstream needs in clear and are not published
    under a clear namespace, minimisation does not contradict `on_schema_change`."""
    privacy = de.privacy
    if not privacy.keep_unmapped and de.on_schema_change == "add_columns":
        raise ValueError(f"{de.name}: privacy.keep_unmapped: false drops the columns on_schema_change: "
                         "add_columns would read; choose one")
    if de.fields is not None:
        _check_declared(de)
    if privacy.hash_in_lake:
        _check_lake_hash(de)
    if de.aep is not None:
        clear = sorted(ns for ns, spec in de.aep.identities.items()
                       if spec.column in privacy.hash and ns.lower() in _CLEAR_NAMESPACES)
        if clear:
            raise ValueError(f"{de.name}: hashed column(s) are published under the clear namespace(s) {clear}; "
                             "use Email_LC_SHA256 / Phone_SHA256")


def _check_declared(de: "DataExtensionConfig") -> None:
    privacy, fields = de.privacy, de.fields or ()
    declared = {f.name.lower() for f in fields}
    named = [*([privacy.contact_key] if privacy.contact_key else []), *privacy.personal]
    absent = sorted(c for c in named if c.lower() not in declared)
    if absent:
        raise ValueError(f"{de.name}: privacy names column(s) {absent}, which are not among `fields`")
    by_clean = {de.clean_name(f.name): f for f in fields}
    unknown = sorted(set(privacy.hash) - set(by_clean))
    if unknown:
        raise ValueError(f"{de.name}: privacy.hash names {unknown}, which are not clean columns")
    not_text = sorted(c for c in privacy.hash if by_clean[c].type not in _TEXT)
    if not_text:
        raise ValueError(f"{de.name}: privacy.hash columns {not_text} are not text; only text is hashed")


def _check_lake_hash(de: "DataExtensionConfig") -> None:
    """Columns the pipeline matches or checks in clear cannot be hashed before the lake."""
    needed = {"contact_key", "email"} | {de.clean_name(c) for c in de.key_columns(de.fields or ())}
    if de.privacy.contact_key:
        needed.add(de.clean_name(de.privacy.contact_key))
    if de.delta_column:
        needed.add(de.clean_name(de.delta_column))
    clash = sorted(set(de.privacy.hash_in_lake) & needed)
    if clash:
        raise ValueError(f"{de.name}: {clash} cannot be hashed in the lake (keys, the contact key and the "
                         "segments' e-mail are matched or checked in clear); hash them for publishing only")


def check_project_privacy(project: "ProjectConfig") -> None:
    """Raw retention outlasts the look-back; clean retention leaves the segment tables what they read."""
    short = sorted(d.name for d in project.data_extensions
                   if d.privacy.retention_days is not None and d.privacy.retention_days <= project.lookback_days)
    if short:
        raise ValueError(f"{short}: privacy.retention_days must exceed lookback_days ({project.lookback_days}): "
                         "the daily schedule re-reads those days")
    rules = project.segments
    if rules is None:
        return
    by_name = {d.name: d for d in project.data_extensions}
    if by_name[rules.contacts].privacy.clean_retention_days is not None:
        raise ValueError(f"{rules.contacts}: clean_retention_days would drop contacts the segment tables read "
                         "(every contact's latest row, however old)")
    windows = [(rules.activities, rules.activity_window_days)]
    if rules.engagement_source != "events":  # otherwise the engagement data extension is not read
        windows.append((rules.engagement, rules.engagement_window_days))
    for name, window in windows:
        days = by_name[name].privacy.clean_retention_days if name in by_name else None
        if days is not None and days < window + project.lookback_days:
            raise ValueError(f"{name}: clean_retention_days {days} is shorter than the segment window "
                             f"({window} days) plus the look-back ({project.lookback_days})")

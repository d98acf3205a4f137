"""The data extension configuration: each data extension described once, assets generated from it.

The YAML file (bundled `config/data_extensions.yaml`, or `$SFMC_ASSETS_CONFIG`) names, per data
extension: its external key, primary key and delta column, optionally its fields (otherwise they are
discovered from Marketing Cloud's field metadata), and the mapping of its columns and values onto the
canonical model (`lib/canonical.py`). Validation happens at load time, so a typo fails `dagster
definitions validate`, not a run at 2 a.m.
"""

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sfmc_assets.lib.canonical import KINDS, LIFECYCLE_STAGES, Kind
from sfmc_assets.lib.experience_platform.xdm import XdmMapping
from sfmc_assets.lib.settings import config_path

FieldType = Literal["Text", "Number", "Date", "Boolean", "EmailAddress", "Phone", "Decimal", "Locale"]
_OFFSET = re.compile(r"^[+-]\d{2}:\d{2}$")
_ASSET_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldSpec(_Strict):
    """A data extension field as Marketing Cloud describes it (`/data/v1/customobjects/{id}/fields`)."""

    name: str
    type: FieldType
    length: int | None = None
    scale: int | None = None
    is_primary_key: bool = False
    is_nullable: bool = True


_FIELD = re.compile(
    r"^(?P<type>[A-Za-z]+)(?:\((?P<length>\d+)(?:\s*,\s*(?P<scale>\d+))?\))?(?P<flags>(?:\s+[a-z-]+)*)\s*$"
)


def _parse_field(name: str, spec: object) -> dict[str, object]:
    """`EmailAddress(254) required` / `Decimal(18,2)` / `Text(254) primary-key` -> FieldSpec fields."""
    if isinstance(spec, dict):
        return {"name": name, **spec}
    m = _FIELD.match(str(spec))
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


class DataExtensionConfig(_Strict):
    """One data extension: where it is, how to read it incrementally, and how it maps to the canonical model."""

    name: str = Field(description="Asset name (snake_case), e.g. `contacts`.")
    kind: str = Field(description="Canonical kind: contacts, engagement or activities.")
    external_key: str = Field(description="The data extension's external (customer) key in Marketing Cloud.")
    description: str = ""
    primary_key: tuple[str, ...]
    delta_column: str = Field(description="Date column used for incremental loads and partitioning.")
    fields: tuple[FieldSpec, ...] | None = Field(
        default=None, description="Expected fields; omitted = discovered from Marketing Cloud at run time."
    )
    columns: dict[str, str] = Field(description="Canonical role -> source column.")
    values: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="Canonical enum role -> {source value -> canonical value}."
    )
    start_date: dt.date | None = None
    quarantine_tolerance: float = Field(
        default=0.0, ge=0.0, le=1.0,
        description="Share of a partition's rows that may fail the contract and be quarantined while the "
        "valid rows go on; above it the partition is blocked. 0 = any failing row blocks.",
    )
    owners: tuple[str, ...] = ()
    aep: XdmMapping | None = Field(
        default=None, description="Experience Platform dataset and XDM mapping; omitted = not published."
    )

    @field_validator("fields", mode="before")
    @classmethod
    def _compact_fields(cls, v: object) -> object:
        if isinstance(v, dict):
            return tuple(_parse_field(name, spec) for name, spec in v.items())
        return v

    @field_validator("name")
    @classmethod
    def _snake_case(cls, v: str) -> str:
        if not _ASSET_NAME.match(v):
            raise ValueError(f"name {v!r} must be snake_case (it becomes an asset key)")
        return v

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        if v not in KINDS:
            raise ValueError(f"unknown kind {v!r}; expected one of {sorted(KINDS)}")
        return v

    @model_validator(mode="after")
    def _mapping_is_complete(self) -> "DataExtensionConfig":
        kind = self.kind_def
        role_names = {r.name for r in kind.roles}
        unknown = sorted(set(self.columns) - role_names)
        if unknown:
            raise ValueError(f"{self.name}: unknown role(s) {unknown} for kind {kind.name!r}")
        missing = sorted(r.name for r in kind.roles if r.required and r.name not in self.columns)
        if missing:
            raise ValueError(f"{self.name}: required role(s) {missing} are not mapped to a source column")
        if self.columns[kind.time_role].lower() != self.delta_column.lower():
            raise ValueError(
                f"{self.name}: delta_column {self.delta_column!r} must be the column mapped to "
                f"{kind.time_role!r} ({self.columns[kind.time_role]!r})"
            )
        if len(self.primary_key) != 1 or self.primary_key[0].lower() != self.columns[kind.key_role].lower():
            raise ValueError(
                f"{self.name}: primary_key must be the single column mapped to {kind.key_role!r}"
            )
        for role_name, mapping in self.values.items():
            if role_name not in role_names or kind.role(role_name).enum is None:
                raise ValueError(f"{self.name}: values given for {role_name!r}, which is not an enum role")
            allowed = set(kind.role(role_name).enum or ())
            bad = sorted(v for v in mapping.values() if v not in allowed)
            if bad:
                raise ValueError(f"{self.name}: {role_name} maps onto {bad}, not in {sorted(allowed)}")
        for role in kind.enum_roles:
            if role.name in self.columns and role.name not in self.values:
                raise ValueError(f"{self.name}: enum role {role.name!r} is mapped but has no `values` mapping")
        if self.aep is not None:
            known = {r.name for r in kind.roles}
            unknown_columns = sorted(set(self.aep.source_columns()) - known)
            if unknown_columns:
                raise ValueError(f"{self.name}: the XDM mapping reads {unknown_columns}, not columns of kind {kind.name}")
        if self.fields is not None:
            names = {f.name.lower() for f in self.fields}
            absent = sorted(c for c in self.columns.values() if c.lower() not in names)
            if absent:
                raise ValueError(f"{self.name}: mapped column(s) {absent} are not among `fields`")
        return self

    @property
    def kind_def(self) -> Kind:
        return KINDS[self.kind]


class SourceConfig(_Strict):
    """Properties of the Marketing Cloud account itself."""

    utc_offset: str = Field(
        default="-06:00",
        description="Offset of the account's server time. Marketing Cloud is fixed UTC-6 (no DST).",
    )

    @field_validator("utc_offset")
    @classmethod
    def _offset_format(cls, v: str) -> str:
        if not _OFFSET.match(v):
            raise ValueError(f"utc_offset {v!r} must look like -06:00")
        return v

    @property
    def offset(self) -> dt.timedelta:
        sign = -1 if self.utc_offset.startswith("-") else 1
        hours, minutes = (int(p) for p in self.utc_offset[1:].split(":"))
        return sign * dt.timedelta(hours=hours, minutes=minutes)


class SegmentRules(_Strict):
    """The segment rules: which data extensions feed them, windows and lifecycle stages."""

    contacts: str = Field(default="contacts", description="Data extension (kind contacts) feeding the segments.")
    engagement: str = Field(default="campaigns", description="Data extension (kind engagement).")
    activities: str = Field(default="activities", description="Data extension (kind activities).")
    engagement_window_days: int = Field(default=30, ge=1, description="Engagement window, ending with the day.")
    activity_window_days: int = Field(default=7, ge=1, description="Activity window, ending with the day.")
    welcome_stages: tuple[str, ...] = ("new",)
    loyalty_stages: tuple[str, ...] = ("repeat", "loyal")
    reengagement_stages: tuple[str, ...] = ("inactive",)

    @field_validator("welcome_stages", "loyalty_stages", "reengagement_stages")
    @classmethod
    def _known_stages(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(v) - set(LIFECYCLE_STAGES))
        if unknown:
            raise ValueError(f"unknown lifecycle stage(s) {unknown}; expected {list(LIFECYCLE_STAGES)}")
        return v


class ProjectConfig(_Strict):
    """The whole configuration file."""

    source: SourceConfig = SourceConfig()
    start_date: dt.date = Field(description="First daily partition, unless a data extension overrides it.")
    lookback_days: int = Field(
        default=1, ge=0, description="Earlier partitions the daily schedule re-materialises for late rows."
    )
    data_extensions: tuple[DataExtensionConfig, ...]
    segments: SegmentRules | None = Field(default=None, description="Segment tables; omitted = none built.")

    @model_validator(mode="after")
    def _unique_names(self) -> "ProjectConfig":
        names = [d.name for d in self.data_extensions]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate data extension name(s): {dupes}")
        if self.segments is not None:
            by_name = {d.name: d for d in self.data_extensions}
            for role, kind in (("contacts", "contacts"), ("engagement", "engagement"), ("activities", "activities")):
                name = getattr(self.segments, role)
                if name not in by_name or by_name[name].kind != kind:
                    raise ValueError(f"segments.{role} must name a data extension of kind {kind}, got {name!r}")
        return self

    def data_extension(self, name: str) -> DataExtensionConfig:
        for de in self.data_extensions:
            if de.name == name:
                return de
        raise KeyError(f"no data extension named {name!r} in the configuration")

    def start_date_of(self, de: DataExtensionConfig) -> dt.date:
        return de.start_date or self.start_date


def load_config(path: Path | None = None) -> ProjectConfig:
    """Read and validate a configuration file; errors name the file and the offending entry."""
    path = path or config_path()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"data extension configuration not found: {path}") from exc
    try:
        return ProjectConfig.model_validate(raw)
    except ValueError as exc:
        raise ValueError(f"invalid data extension configuration {path}: {exc}") from exc


_IN_FORCE: ContextVar[ProjectConfig | None] = ContextVar("sfmc_assets_config", default=None)


@contextmanager
def config_in_force(config: ProjectConfig | None = None) -> Iterator[ProjectConfig]:
    """Make `config` (default: the file's) the one `current_config()` returns while the block runs.

    The definitions are loaded from the `defs/` folder, whose modules each build their part from the
    configuration in force: one file read per load, and tests load the same folder with another
    configuration.
    """
    token = _IN_FORCE.set(config or load_config())
    try:
        yield _IN_FORCE.get()  # type: ignore[misc]
    finally:
        _IN_FORCE.reset(token)


def current_config() -> ProjectConfig:
    """The configuration in force: the one set by `config_in_force`, else the file's."""
    return _IN_FORCE.get() or load_config()

"""The data extension configuration: each data extension described once, assets generated from it.

The YAML file (bundled `config/data_extensions.yaml`, or `$SFMC_ASSETS_CONFIG`) names, per data
extension: its external key, how it is read (`sync: incremental` on a date/time delta column, or
`sync: full` snapshots for data extensions without one), its primary key (one or several columns),
optionally its fields (otherwise they are discovered from Marketing Cloud's field metadata), how its
columns are named in the clean layer, rules beyond what the metadata says, what to do when Marketing
Cloud's schema changes, and optionally a canonical *kind* (contacts, engagement, activities): an overlay
that maps some columns onto the roles the segment tables read. Validation happens at load time, so a
typo fails `dg check defs`, not a run at 2 a.m.
"""

import datetime as dt
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sfmc_assets.lib.canonical import KINDS, LIFECYCLE_STAGES, Kind
from sfmc_assets.lib.experience_platform.xdm import XdmMapping
from sfmc_assets.lib.marketing_cloud.fields import FieldSpec, parse_compact, snake_case
from sfmc_assets.lib.privacy.config import PrivacyConfig, check_privacy, check_project_privacy
from sfmc_assets.lib.settings import config_path

__all__ = ["ColumnRules", "DataExtensionConfig", "FieldSpec", "PrivacyConfig", "ProjectConfig", "SegmentRules",
           "SourceConfig", "TrackingEventsConfig", "config_in_force", "current_config", "load_config"]

_OFFSET = re.compile(r"^[+-]\d{2}:\d{2}$")
_ASSET_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnRules(_Strict):
    """Rules a clean column must follow beyond its Marketing Cloud metadata (all optional)."""

    required: bool = Field(default=False, description="Empty values fail, even where Marketing Cloud allows them.")
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    isin: tuple[str | int | float | bool, ...] | None = Field(default=None, description="Allowed values.")
    regex: str | None = Field(default=None, description="Pattern every non-empty value matches.")
    min_length: int | None = Field(default=None, ge=0)
    max_length: int | None = Field(default=None, ge=0)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"regex {v!r} does not compile: {exc}") from None
        return v


class DataExtensionConfig(_Strict):
    """One data extension: where it is, how it is read, how its columns are named and checked."""

    name: str = Field(description="Asset name (snake_case), e.g. `contacts`.")
    external_key: str = Field(description="The data extension's external (customer) key in Marketing Cloud.")
    description: str = ""
    kind: str | None = Field(
        default=None, description="Optional canonical overlay (contacts, engagement, activities): maps columns "
        "onto the roles the segment tables read. Without it the data extension is generic.",
    )
    sync: Literal["incremental", "full"] = Field(
        default="incremental", description="incremental: each partition reads the rows whose `delta_column` "
        "falls in its UTC day; full: each partition is a snapshot of the whole data extension, and rows that "
        "disappeared since the previous snapshot are recorded as deletes.",
    )
    delta_column: str | None = Field(default=None, description="Date column of incremental reads.")
    primary_key: tuple[str, ...] = Field(
        default=(), description="Key column(s); default: the fields marked primary-key (metadata or `fields`).",
    )
    fields: tuple[FieldSpec, ...] | None = Field(
        default=None, description="Expected fields; omitted = discovered from Marketing Cloud at run time."
    )
    rename: dict[str, str] = Field(
        default_factory=dict, description="Source column -> clean column name (default: snake_case of the source).",
    )
    columns: dict[str, str] = Field(default_factory=dict, description="Canonical role -> source column (kind).")
    values: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="Canonical enum role -> {source value -> canonical value}."
    )
    rules: dict[str, ColumnRules] = Field(
        default_factory=dict, description="Clean column -> declared rules (ranges, allowed values, regex, ...).",
    )
    on_schema_change: Literal["fail", "add_columns", "ignore"] = Field(
        default="fail", description="When Marketing Cloud's fields differ from `fields`: fail the read; read "
        "added columns too; or read the declared fields only. A removed or retyped declared column always fails.",
    )
    reconcile_keys: Literal["never", "daily", "weekly"] = Field(
        default="never", description="Incremental only: read every key of the data extension on this cadence "
        "to find rows deleted in Marketing Cloud (incremental reads never see deletes).",
    )
    start_date: dt.date | None = None
    schedule: Literal["once", "hourly", "daily", "weekly"] = Field(
        default="daily", description="How often it is read (docs/schedules.md): once (launched by hand), "
        "hourly (today's partition re-read every `interval` hours), daily, or weekly (Mondays).",
    )
    interval: int = Field(default=1, description="Every `interval` hours, days or weeks (hourly: a divisor "
                                                 "of 24, so the runs fall at the same hours every day).")
    quarantine_tolerance: float = Field(
        default=0.0, ge=0.0, le=1.0,
        description="Share of a partition's rows that may fail the contract and be quarantined while the "
        "valid rows go on; above it the partition is blocked. 0 = any failing row blocks.",
    )
    owners: tuple[str, ...] = ()
    aep: XdmMapping | None = Field(
        default=None, description="Experience Platform dataset and XDM mapping; omitted = not published."
    )
    privacy: PrivacyConfig = Field(
        default_factory=PrivacyConfig, description="Personal data: contact key, retention, hashing, minimisation.",
    )

    @field_validator("fields", mode="before")
    @classmethod
    def _compact_fields(cls, v: object) -> object:
        if isinstance(v, dict):
            return tuple(parse_compact(name, spec) for name, spec in v.items())
        return v

    @field_validator("name")
    @classmethod
    def _snake_case(cls, v: str) -> str:
        if not _ASSET_NAME.match(v):
            raise ValueError(f"name {v!r} must be snake_case (it becomes an asset key)")
        return v

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str | None) -> str | None:
        if v is not None and v not in KINDS:
            raise ValueError(f"unknown kind {v!r}; expected one of {sorted(KINDS)}")
        return v

    @field_validator("rename")
    @classmethod
    def _clean_targets(cls, v: dict[str, str]) -> dict[str, str]:
        bad = sorted(t for t in v.values() if not _ASSET_NAME.match(t))
        if bad:
            raise ValueError(f"rename targets {bad} must be snake_case column names")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "DataExtensionConfig":
        self._check_sync()
        self._check_schedule()
        self._check_key()
        if self.kind is not None:
            self._check_overlay()
        elif self.columns or self.values:
            raise ValueError(f"{self.name}: `columns`/`values` map roles of a `kind`; set `kind` or use `rename`")
        if self.fields is not None:
            self._check_declared_fields()
        check_privacy(self)  # lib/privacy/config.py
        self._default_record_ids()
        return self

    def _default_record_ids(self) -> None:
        """An ExperienceEvent needs a deterministic `_id`: by default it is derived from the primary key."""
        if self.aep is None or self.aep.id_columns or self.aep.xdm_class != "experience_event":
            return
        keys = self.key_columns(self.fields or ())
        if not keys:
            raise ValueError(f"{self.name}: an experience_event mapping needs `aep.id_columns` (the `_id` "
                             "source), or a primary key to derive it from (`primary_key` or `fields`)")
        # The model is frozen; this completes it while it is being validated.
        object.__setattr__(self, "aep", self.aep.model_copy(update={"id_columns": [self.clean_name(k) for k in keys]}))

    def _check_sync(self) -> None:
        if self.sync == "incremental" and not self.delta_column:
            raise ValueError(f"{self.name}: an incremental data extension needs `delta_column` (a Date field); "
                             "a data extension without one is read with `sync: full`")
        if self.sync == "full" and self.delta_column:
            raise ValueError(f"{self.name}: `sync: full` reads the whole data extension; remove `delta_column`")
        if self.sync == "full" and self.reconcile_keys != "never":
            raise ValueError(f"{self.name}: `reconcile_keys` is for incremental data extensions; full "
                             "snapshots find deletes by themselves")

    def _check_schedule(self) -> None:
        if self.interval < 1:
            raise ValueError(f"{self.name}: interval {self.interval} must be at least 1 (every 1 {self._unit})")
        if self.schedule == "once" and self.interval != 1:
            raise ValueError(f"{self.name}: `schedule: once` runs when launched; remove `interval`")
        if self.schedule == "hourly" and 24 % self.interval:
            raise ValueError(f"{self.name}: an hourly interval must divide 24 (1, 2, 3, 4, 6, 8 or 12) so the "
                             f"runs fall at the same hours every day, got {self.interval}")
        if self.schedule == "hourly" and self.sync == "full":
            raise ValueError(f"{self.name}: `sync: full` reads the whole data extension into the day's snapshot; "
                             "reading it every hour is not supported: use `schedule: daily` (or incremental "
                             "reads on a Date column)")
        read_daily = self.schedule == "hourly" or (self.schedule == "daily" and self.interval == 1)
        if self.reconcile_keys == "daily" and not read_daily:
            raise ValueError(f"{self.name}: `reconcile_keys: daily` runs with the daily read; it needs "
                             "`schedule: daily` (interval 1) or `schedule: hourly`")
        if self.schedule == "once" and self.reconcile_keys != "never":
            raise ValueError(f"{self.name}: `reconcile_keys` is recurring; `schedule: once` has no recurring run")

    @property
    def _unit(self) -> str:
        return {"hourly": "hour", "weekly": "week"}.get(self.schedule, "day")

    def _check_key(self) -> None:
        if len({c.lower() for c in self.primary_key}) != len(self.primary_key):
            raise ValueError(f"{self.name}: primary_key {list(self.primary_key)} repeats a column")

    def _check_overlay(self) -> None:
        kind = self.kind_def
        if self.sync != "incremental":
            raise ValueError(f"{self.name}: a `kind` overlay needs `sync: incremental` (its {kind.time_role!r} "
                             "role is the delta column)")
        role_names = {r.name for r in kind.roles}
        unknown = sorted(set(self.columns) - role_names)
        if unknown:
            raise ValueError(f"{self.name}: unknown role(s) {unknown} for kind {kind.name!r}")
        missing = sorted(r.name for r in kind.roles if r.required and r.name not in self.columns)
        if missing:
            raise ValueError(f"{self.name}: required role(s) {missing} are not mapped to a source column")
        if self.columns[kind.time_role].lower() != (self.delta_column or "").lower():
            raise ValueError(
                f"{self.name}: delta_column {self.delta_column!r} must be the column mapped to "
                f"{kind.time_role!r} ({self.columns[kind.time_role]!r})"
            )
        key = self.columns[kind.key_role].lower()
        keys = [c.lower() for c in self.primary_key]
        if kind.one_row_per_key and self.primary_key and keys != [key]:
            raise ValueError(f"{self.name}: primary_key must be the single column mapped to {kind.key_role!r} "
                             f"(one row per {kind.key_role})")
        if self.primary_key and key not in keys:
            raise ValueError(f"{self.name}: primary_key {list(self.primary_key)} must include the column mapped "
                             f"to {kind.key_role!r} ({self.columns[kind.key_role]!r})")
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

    def _check_declared_fields(self) -> None:
        assert self.fields is not None
        names = {f.name.lower() for f in self.fields}
        if len(names) != len(self.fields):
            raise ValueError(f"{self.name}: `fields` names a column twice (names are case-insensitive)")
        referenced = [*self.columns.values(), *self.primary_key, *self.rename,
                      *([self.delta_column] if self.delta_column else [])]
        absent = sorted({c for c in referenced if c.lower() not in names})
        if absent:
            raise ValueError(f"{self.name}: column(s) {absent} are not among `fields`")
        if self.sync == "full" and not self.key_columns(self.fields):
            raise ValueError(f"{self.name}: a `sync: full` data extension needs a primary key (`primary_key`, or "
                             "fields marked primary-key) to tell which rows were deleted between snapshots")
        if self.delta_column and self.field(self.delta_column).type != "Date":
            raise ValueError(f"{self.name}: delta_column {self.delta_column!r} is "
                             f"{self.field(self.delta_column).type}; incremental reads need a Date field")
        clean = self.clean_names(self.fields)
        columns = set(clean.values()) | set(self.role_defaults())
        unknown = sorted(set(self.rules) - columns)
        if unknown:
            raise ValueError(f"{self.name}: rules for {unknown}, which are not clean columns ({sorted(columns)})")
        if self.aep is not None:
            missing = sorted(set(self.aep.source_columns()) - columns)
            if missing:
                raise ValueError(f"{self.name}: the XDM mapping reads {missing}, not clean columns of "
                                 f"{self.name} ({sorted(columns)})")

    # -- what the rest of the code asks of a data extension ------------------------------------------

    @property
    def kind_def(self) -> Kind | None:
        return KINDS[self.kind] if self.kind else None

    def field(self, name: str) -> FieldSpec:
        for f in self.fields or ():
            if f.name.lower() == name.lower():
                return f
        raise KeyError(f"{self.name}: no field {name!r}")

    def key_columns(self, fields: Sequence[FieldSpec]) -> tuple[str, ...]:
        """The primary key's source columns: the configured ones, else the fields marked primary key."""
        if self.primary_key:
            by_lower = {f.name.lower(): f.name for f in fields}
            return tuple(by_lower.get(c.lower(), c) for c in self.primary_key)
        return tuple(f.name for f in fields if f.is_primary_key)

    def role_of(self, source: str) -> str | None:
        """The canonical role a source column is mapped to, if any."""
        return next((role for role, col in self.columns.items() if col.lower() == source.lower()), None)

    def clean_name(self, source: str) -> str:
        """A source column's name in the clean layer: its role, its rename, else its snake_case."""
        role = self.role_of(source)
        if role:
            return role
        rename = {k.lower(): v for k, v in self.rename.items()}
        return rename.get(source.lower()) or snake_case(source)

    def clean_names(self, fields: Iterable[FieldSpec]) -> dict[str, str]:
        """Source column -> clean column for `fields`; two columns with one clean name are an error."""
        out: dict[str, str] = {}
        seen: dict[str, str] = {role: f"(role {role})" for role in self.role_defaults()}
        for f in fields:
            name = self.clean_name(f.name)
            if name in seen:
                raise ValueError(f"{self.name}: columns {seen[name]!r} and {f.name!r} are both named {name!r} in "
                                 f"the clean layer; give one a `rename`")
            seen[name] = f.name
            out[f.name] = name
        reserved = sorted(set(seen) & _RESERVED_CLEAN)
        if reserved:
            raise ValueError(f"{self.name}: clean column name(s) {reserved} are reserved; use `rename`")
        return out

    def role_defaults(self) -> list[str]:
        """Roles of the kind that are not mapped: the clean layer holds them as typed nulls."""
        kind = self.kind_def
        return [r.name for r in kind.roles if r.name not in self.columns] if kind else []


#: Columns the clean layer adds itself.
_RESERVED_CLEAN = frozenset({"partition_date", "days_since_last_order", "_parse_errors", "_rejection_reasons"})


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
    engagement_source: Literal["data_extension", "events", "both"] = Field(
        default="data_extension", description="Where engagement counts come from: the `engagement` data "
        "extension, Marketing Cloud's tracking events, or both (sends, opens, clicks, bounces and unsubscribes "
        "from the events, every other action, such as responses, from the data extension).")
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


#: Marketing Cloud's e-mail tracking objects this project reads, by asset name (docs/tracking-events.md).
EVENT_TYPES = ("sent", "open", "click", "bounce", "unsubscribe")
_TENANT_FIELD = re.compile(r"^_[A-Za-z][A-Za-z0-9]*$")


class TrackingPublish(_Strict):
    """Where tracking events go in Experience Platform: one ExperienceEvent dataset for every type."""

    dataset: str = Field(min_length=1, description="Experience Platform dataset id.")
    tenant_field: str = Field(description="The schema's tenant namespace (`_yourtenant`); event details go "
                              "under `<tenant_field>.emailTracking`.")

    @field_validator("tenant_field")
    @classmethod
    def _tenant(cls, v: str) -> str:
        if not _TENANT_FIELD.match(v):
            raise ValueError(f"tenant_field {v!r} must look like _yourtenant")
        return v


class TrackingEventsConfig(_Strict):
    """Marketing Cloud's own tracking (sends, opens, clicks, bounces, unsubscribes) read as events."""

    types: tuple[Literal["sent", "open", "click", "bounce", "unsubscribe"], ...] = Field(
        default=EVENT_TYPES, min_length=1, description="Event types read; each becomes its own assets.")
    start_date: dt.date | None = Field(default=None, description="First daily partition (default: the file's).")
    quarantine_tolerance: float = Field(default=0.0, ge=0.0, le=1.0,
                                        description="Share of a day's events that may fail the contract.")
    owners: tuple[str, ...] = ()
    aep: TrackingPublish | None = Field(default=None, description="Experience Platform; omitted = not published.")

    @field_validator("types")
    @classmethod
    def _once(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError(f"types {list(v)} name a type twice")
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
    tracking_events: TrackingEventsConfig | None = Field(
        default=None, description="Marketing Cloud's e-mail tracking as event assets; omitted = not read.")

    @model_validator(mode="after")
    def _unique_names(self) -> "ProjectConfig":
        names = [d.name for d in self.data_extensions]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate data extension name(s): {dupes}")
        if self.segments is not None:
            by_name = {d.name: d for d in self.data_extensions}
            source = self.segments.engagement_source
            types = set(self.tracking_events.types) if self.tracking_events else set()
            if source != "data_extension" and not {"sent", "open", "click"} <= types:
                raise ValueError(f"segments.engagement_source {source!r} counts tracking events: "
                                 "`tracking_events.types` must include sent, open and click")
            roles = ("contacts", "activities") + (("engagement",) if source != "events" else ())
            for role in roles:  # each role's data extension is of the kind of the same name
                name = getattr(self.segments, role)
                if name not in by_name or by_name[name].kind != role:
                    raise ValueError(f"segments.{role} must name a data extension of kind {role}, got {name!r}")
        check_project_privacy(self)  # lib/privacy/config.py
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

"""What a data extension looks like before it is ingested, and the configuration entry it suggests.

Adobe's source starts from a list of the account's data extensions, a preview, and a best-effort
mapping; this module does the same for the configuration file: it describes data extensions from
Marketing Cloud's metadata (`lib/marketing_cloud/catalog.py`), previews their first rows with personal
columns masked, and suggests an entry (`suggest`) that `entry_yaml` writes with every guess marked by a
comment. The guesses are kept safe to run: the fields, key and delta column are Marketing Cloud's own;
a canonical kind is only ever written commented out (its enum values need a person to map them), and an
XDM mapping is active only when the user named the dataset to publish to.
"""

import dataclasses
import difflib
import re
from dataclasses import dataclass, field

import polars as pl

from sfmc_assets.lib.canonical import KINDS, Kind
from sfmc_assets.lib.config import _RESERVED_CLEAN  # the clean layer's own columns
from sfmc_assets.lib.marketing_cloud.catalog import DataExtensionSummary, fields_of, find, search
from sfmc_assets.lib.marketing_cloud.client import MarketingCloudClient
from sfmc_assets.lib.marketing_cloud.fields import FieldSpec, snake_case
from sfmc_assets.lib.marketing_cloud.rowset import MAX_PAGE_SIZE, RowsetReader
from sfmc_assets.lib.personal import PII_ROLES, mask, named_personal

#: Name stems (lower-case, letters and digits only) that make a source column likely to hold a role.
ROLE_NAMES: dict[str, tuple[str, ...]] = {
    "contact_key": ("subscriberkey", "contactkey", "subscriberid", "contactid", "customerkey", "customerid"),
    "email": ("email", "emailaddress", "mail"),
    "first_name": ("firstname", "givenname", "forename", "prenom"),
    "last_name": ("lastname", "surname", "familyname"),
    "lifecycle_stage": ("stage", "lifecyclestage", "customerstage", "lifecycle"),
    "opt_in": ("optin", "emailoptin", "consent", "subscribed", "optedin"),
    "total_orders": ("totalorders", "ordercount", "orders"),
    "lifetime_value": ("lifetimevalue", "ltv", "clv", "customerlifetimevalue"),
    "last_order_at": ("lastorderdate", "lastorder", "lastpurchasedate"),
    "locale": ("locale", "language", "preferredlanguage"),
    "phone": ("phone", "mobilephone", "mobile", "phonenumber", "mobilenumber"),
    "engagement_id": ("engagementid", "eventid", "interactionid"),
    "campaign_id": ("campaignid", "jobid"),
    "campaign_name": ("campaignname", "emailname", "campaign"),
    "channel": ("channel",),
    "action": ("eventname", "eventtype", "action"),
    "sentiment": ("sentiment", "responsesentiment"),
    "link_url": ("linkurl", "link", "url"),
    "activity_id": ("activityid",),
    "activity_kind": ("activitytype", "activitykind"),
    "page_url": ("pageurl", "page", "url"),
    "form_name": ("formname", "form"),
    "order_id": ("orderid", "purchaseid"),
    "order_amount": ("orderamount", "amount", "ordertotal"),
}
#: Date columns named like this hold when a row changed or happened: good delta columns, best first.
_DELTA_STEMS = (("modified", "updated", "changed"), ("event", "activity", "created", "inserted", "date", "time"))
#: Date columns named like this are calendar facts about the row, not when it was written.
_NOT_DELTA = ("birth", "dob", "expir", "anniversary", "due", "valid", "start", "end")


def _stem(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", name.lower())


@dataclass(frozen=True)
class DiscoveredDataExtension:
    """A data extension as the account describes it: search result and fields."""

    summary: DataExtensionSummary
    fields: tuple[FieldSpec, ...]

    @property
    def key(self) -> str:
        return self.summary.key

    @property
    def primary_key(self) -> list[str]:
        return [f.name for f in self.fields if f.is_primary_key]

    @property
    def delta_candidates(self) -> list[str]:
        """Every Date field: incremental reads filter on one of them."""
        return [f.name for f in self.fields if f.type == "Date"]

    def as_json(self) -> dict[str, object]:
        return {**dataclasses.asdict(self.summary), "primary_key": self.primary_key,
                "delta_candidates": self.delta_candidates, "suggested_delta": suggest_delta(self.fields)[0],
                "fields": [{"name": f.name, "type": f.type, "length": f.length, "scale": f.scale,
                            "nullable": f.is_nullable, "primary_key": f.is_primary_key} for f in self.fields]}


def describe_all(client: MarketingCloudClient, term: str = "") -> list[DiscoveredDataExtension]:
    """Every data extension the search finds (all pages), with its fields."""
    return [DiscoveredDataExtension(s, fields_of(client, s)) for s in search(client, term)]


def describe(client: MarketingCloudClient, key: str) -> DiscoveredDataExtension:
    """One data extension by external key (`DataExtensionNotFoundError` when the account has none)."""
    summary = find(client, key)
    return DiscoveredDataExtension(summary, fields_of(client, summary))


def first_rows(client: MarketingCloudClient, de: DiscoveredDataExtension, rows: int,
               utc_offset_hours: float = -6.0) -> tuple[pl.DataFrame, int]:
    """The first `rows` rows in primary-key order, typed as the raw layer types them; and the row count."""
    reader = RowsetReader(client, de.key, de.fields, page_size=max(1, min(rows, MAX_PAGE_SIZE)), concurrency=1,
                          utc_offset_hours=utc_offset_hours)
    pages = reader.pages()
    try:
        frame = next(pages)
    finally:
        pages.close()  # the first page is all a preview reads
    return frame.head(rows), reader.stats.count


def personal_fields(fields: tuple[FieldSpec, ...]) -> list[str]:
    """Columns likely to hold personal data: e-mail and phone types, names of personal roles, and names
    that say so (the same test as the assets' previews, `lib/personal.py`)."""
    stems = {stem for role in PII_ROLES for stem in ROLE_NAMES[role]}
    return list(dict.fromkeys([*(f.name for f in fields if _stem(f.name) in stems), *named_personal(fields)]))


def masked(frame: pl.DataFrame, fields: tuple[FieldSpec, ...]) -> pl.DataFrame:
    """The frame with personal columns reduced to their first character (as materialisation previews are)."""
    return frame.with_columns(mask(c) for c in personal_fields(fields) if c in frame.columns)


def suggest_delta(fields: tuple[FieldSpec, ...]) -> tuple[str | None, str]:
    """The Date field to read increments on, or None, and why (the reason goes into a YAML comment).

    Only a required Date field qualifies: a row whose delta value is empty falls in no day and would
    never be read.
    """
    dates = [f for f in fields if f.type == "Date" and not any(s in _stem(f.name) for s in _NOT_DELTA)]
    required = [f for f in dates if not f.is_nullable]

    def rank(f: FieldSpec) -> int:
        return next((i for i, stems in enumerate(_DELTA_STEMS) if any(s in _stem(f.name) for s in stems)),
                    len(_DELTA_STEMS))

    if required:
        best = min(required, key=rank)
        named = "named like a modification time" if rank(best) == 0 else "the best-named required Date field"
        return best.name, f"suggested: {named}"
    if dates:
        return None, (f"suggested: Date field(s) {[f.name for f in dates]} may be empty, and an empty row would "
                      "never be read incrementally")
    return None, "suggested: no Date field to read increments on"


def match_roles(fields: tuple[FieldSpec, ...], delta: str | None, kind: Kind) -> dict[str, str]:
    """Role -> source column where a column's name (or type) makes the role likely."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for role in kind.roles:
        if role.name == kind.time_role:
            if delta:
                out[role.name] = delta
            continue
        stems = ROLE_NAMES.get(role.name, ())
        for f in fields:
            typed = (role.name == "email" and f.type == "EmailAddress") or (role.name == "phone" and f.type == "Phone") \
                or (role.name == "locale" and f.type == "Locale")
            if f.name not in taken and f.name != delta and (typed or _stem(f.name) in stems):
                out[role.name] = f.name
                taken.add(f.name)
                break
    return out


def suggest_kind(fields: tuple[FieldSpec, ...], delta: str | None) -> tuple[Kind, dict[str, str]] | None:
    """The canonical kind whose required roles all have a likely column (most roles matched wins)."""
    if delta is None:
        return None  # a kind needs incremental reads: its time role is the delta column
    keys = {f.name for f in fields if f.is_primary_key}
    found = []
    for kind in KINDS.values():
        roles = match_roles(fields, delta, kind)
        complete = all(r.name in roles for r in kind.roles if r.required)
        keyed = roles.get(kind.key_role) in keys and (not kind.one_row_per_key or len(keys) == 1)
        if complete and keyed:
            found.append((len(roles), kind.name, kind, roles))
    return max(found)[2:] if found else None


def suggest_values(sample: pl.DataFrame, column: str, allowed: tuple[str, ...]) -> dict[str, str]:
    """Source value -> canonical value, for the values seen in `sample`; '?' where no name is close."""
    canon = {_stem(a): a for a in allowed}
    out: dict[str, str] = {}
    for value in sample.get_column(column).drop_nulls().unique().sort().head(20).to_list():
        close = difflib.get_close_matches(_stem(str(value)), list(canon), n=1, cutoff=0.6)
        prefix = next((c for c in canon if _stem(str(value)).startswith(c)), None)
        out[str(value)] = canon[prefix or close[0]] if (prefix or close) else "?"
    return out


@dataclass
class Suggestion:
    """A configuration entry for one data extension, and the reasons that become its YAML comments."""

    de: DiscoveredDataExtension
    name: str
    delta: str | None
    delta_reason: str
    rename: dict[str, str] = field(default_factory=dict)
    kind: tuple[Kind, dict[str, str]] | None = None
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    aep: dict[str, object] | None = None
    aep_active: bool = False
    aep_reason: str = ""


def entry_name(de: DiscoveredDataExtension, taken: set[str]) -> str:
    """A snake_case asset name from the data extension's name (or key) that no other entry uses."""
    base = snake_case(de.summary.name or de.key)
    base = base if re.match(r"^[a-z]", base) else f"de_{base}"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    return name


def clean_renames(fields: tuple[FieldSpec, ...], reserved: frozenset[str]) -> dict[str, str]:
    """`rename` entries for columns whose snake_case names collide with another column or a reserved one."""
    seen: set[str] = set(reserved)
    out: dict[str, str] = {}
    for f in fields:
        name, n = snake_case(f.name), 2
        if name in seen:
            base = f"source_{name}" if name in reserved else name
            name = base
            while name in seen:
                name, n = f"{base}_{n}", n + 1
            out[f.name] = name
        seen.add(name)
    return out


def suggest(de: DiscoveredDataExtension, taken: set[str], *, sample: pl.DataFrame | None = None,
            dataset: str | None = None, xdm_tenant: str | None = None,
            reserved: frozenset[str] = _RESERVED_CLEAN) -> Suggestion:
    """The suggested entry: Marketing Cloud's fields and key, a delta column (else a full sync), a kind
    where the names make one likely, and a best-effort XDM mapping."""
    delta, reason = suggest_delta(de.fields)
    out = Suggestion(de, entry_name(de, taken), delta, reason, rename=clean_renames(de.fields, reserved))
    out.kind = suggest_kind(de.fields, delta)
    if out.kind and sample is not None:
        kind, roles = out.kind
        out.values = {r.name: suggest_values(sample, roles[r.name], r.enum or ())
                      for r in kind.enum_roles if r.name in roles and roles[r.name] in sample.columns}
    out.aep, out.aep_reason = suggest_xdm(out, dataset, xdm_tenant)
    out.aep_active = dataset is not None and out.aep is not None
    return out


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.capitalize() for w in rest)


def suggest_xdm(s: Suggestion, dataset: str | None, tenant: str | None) -> tuple[dict[str, object] | None, str]:
    """A best-effort XDM mapping: every clean column under `_<tenant>.<entry>.<column>` (camelCase), the
    e-mail and subscriber key as identities, the delta column as the event time."""
    clean = {f.name: s.rename.get(f.name) or snake_case(f.name) for f in s.de.fields}
    subscriber = next((f.name for f in s.de.fields if _stem(f.name) in ROLE_NAMES["contact_key"]), None)
    email = next((f.name for f in s.de.fields if f.type == "EmailAddress"), None)
    keys = s.de.primary_key
    profile = s.delta is None or (len(keys) == 1 and keys[0] in (subscriber, email))
    if not profile and not keys:
        return None, "no XDM mapping suggested: an ExperienceEvent needs a primary key for its `_id`"
    root = f"_{(tenant or 'yourtenant').lstrip('_')}.{_camel(s.name)}"
    identities: dict[str, dict[str, object]] = {}
    for namespace, column in (("SFMCSubscriberKey", subscriber), ("Email", email)):
        if column is not None:
            identities[namespace] = {"column": clean[column], "primary": not identities}
    mapping: dict[str, object] = {"dataset": dataset or "<your dataset id>",
                                  "xdm_class": "profile" if profile else "experience_event",
                                  "fields": {f"{root}.{_camel(c)}": c for c in clean.values()},
                                  "identities": identities}
    if not profile:
        mapping["timestamp"] = clean[s.delta] if s.delta else None
    why = ("profile: one row per subscriber or a snapshot" if profile
           else "experience_event: one row per event, timed by the delta column")
    return mapping, f"suggested (best effort, check it against your schema): {why}"

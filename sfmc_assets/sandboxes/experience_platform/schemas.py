"""XDM schemas as data, the pre-created sandbox datasets, and the record validator.

Schemas are small JSON-schema-like dicts (``type``/``properties``/``required``/``format``) so that a test or
a later issue can register another one (``POST /_sandbox/schemas``) and create a dataset on it through the
real Catalog route.  The one non-JSON-schema type is ``"identityMap"``: XDM's map of namespace ->
identities, which JSON schema cannot express compactly.

Field paths follow compatibility-mode XDM: standard fields at the root (``person``,
``personalEmail``, ``identityMap``, ``web``, ``commerce``), tenant fields under ``_sfmcsandbox``.
"""

from __future__ import annotations

import copy
import datetime as dt
import decimal
import math
import re
from dataclasses import dataclass, field
from typing import Any

TENANT_ID = "sfmcsandbox"
TENANT_FIELD = f"_{TENANT_ID}"
PROFILE_CLASS = "https://ns.adobe.com/xdm/context/profile"
EVENT_CLASS = "https://ns.adobe.com/xdm/context/experienceevent"
SCHEMA_CONTENT_TYPE = "application/vnd.adobe.xed+json;version=1"

# Standard identity namespaces plus the sandbox org's one custom namespace.  CRMID is not
# standard in Platform, so it is deliberately absent.  identityMap keys are namespace codes (identity
# symbols): "Emails (SHA256, lowercased)" is the display name of the code Email_LC_SHA256, and so on.
STANDARD_NAMESPACES = (
    "ECID",
    "Email",
    "Emails (SHA256, lowercased)",
    "Email_LC_SHA256",
    "Phone",
    "Phone (E.164)",
    "Phone_E.164",
    "Phone (SHA256)",
    "Phone_SHA256",
    "TNTID",
    "AdCloud",
    "GAID",
    "IDFA",
)
CUSTOM_NAMESPACES = ("SFMCSubscriberKey",)
AUTHENTICATED_STATES = ("ambiguous", "authenticated", "loggedOut")

# Per-row error codes Platform documents for batch ingestion.
CODE_CORRUPT = "INGEST-1401-400"
CODE_REQUIRED = "INGEST-1555-400"
MAX_ERRORS_PER_ROW = 5  # streaming validation stops after 5 errors per message

_S: dict[str, Any] = {"type": "string"}
_DATETIME: dict[str, Any] = {"type": "string", "format": "date-time"}


def _obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        node["required"] = required
    return node


def _schema_id(name: str) -> str:
    return f"https://ns.adobe.com/{TENANT_ID}/schemas/{name}"


CONTACTS_SCHEMA: dict[str, Any] = {
    "$id": _schema_id("sfmc-contacts"),
    "title": "SFMC Contacts",
    "meta:class": PROFILE_CLASS,
    "meta:immutableTags": ["union"],
    **_obj(
        {
            "_id": _S,
            "person": _obj({"name": _obj({"firstName": _S, "lastName": _S})}),
            "personalEmail": _obj({"address": _S}),
            "identityMap": {"type": "identityMap"},
            TENANT_FIELD: _obj(
                {
                    "lifecycle": _obj(
                        {
                            "subscriberKey": _S,
                            "stage": _S,
                            "optIn": {"type": "boolean"},
                            "totalOrders": {"type": "integer"},
                            "lifetimeValue": {"type": "number"},
                            "lastOrderDate": _DATETIME,
                            "locale": _S,
                            "modifiedAt": _DATETIME,
                        }
                    )
                }
            ),
        }
    ),
}

ENGAGEMENT_SCHEMA: dict[str, Any] = {
    "$id": _schema_id("sfmc-campaign-engagement"),
    "title": "SFMC Campaign Engagement",
    "meta:class": EVENT_CLASS,
    "meta:immutableTags": ["union"],
    **_obj(
        {
            "_id": _S,
            "timestamp": _DATETIME,
            "eventType": _S,
            "identityMap": {"type": "identityMap"},
            TENANT_FIELD: _obj(
                {
                    "engagement": _obj(
                        {
                            k: _S
                            for k in (
                                "engagementId",
                                "campaignId",
                                "campaignName",
                                "channel",
                                "action",
                                "sentiment",
                                "linkUrl",
                            )
                        }
                    )
                }
            ),
        },
        ["_id", "timestamp"],
    ),
}

# web.webPageDetails and commerce.order / commerce.purchases are Adobe's standard ExperienceEvent field
# groups ("Web Details", "Commerce Details"); Adobe documents the eventTypes (web.*, commerce.*)
# but not the field paths, so these follow the published XDM field groups.
ACTIVITIES_SCHEMA: dict[str, Any] = {
    "$id": _schema_id("sfmc-web-activities"),
    "title": "SFMC Web Activities",
    "meta:class": EVENT_CLASS,
    "meta:immutableTags": ["union"],
    **_obj(
        {
            "_id": _S,
            "timestamp": _DATETIME,
            "eventType": _S,
            "identityMap": {"type": "identityMap"},
            "web": _obj({"webPageDetails": _obj({"URL": _S, "name": _S})}),
            "commerce": _obj(
                {
                    "order": _obj({"purchaseID": _S, "priceTotal": {"type": "number"}, "currencyCode": _S}),
                    "purchases": _obj({"value": {"type": "number"}}),
                }
            ),
            TENANT_FIELD: _obj(
                {
                    "activity": _obj(
                        {
                            "activityId": _S,
                            "kind": _S,
                            "formName": _S,
                            "orderId": _S,
                            "orderAmount": {"type": "number"},
                        }
                    )
                }
            ),
        },
        ["_id", "timestamp"],
    ),
}

# Orders from a generic data extension: Adobe's "Commerce Details" field group plus tenant fields.
ORDERS_SCHEMA: dict[str, Any] = {
    "$id": _schema_id("sfmc-orders"),
    "title": "SFMC Orders",
    "meta:class": EVENT_CLASS,
    "meta:immutableTags": ["union"],
    **_obj(
        {
            "_id": _S,
            "timestamp": _DATETIME,
            "eventType": _S,
            "identityMap": {"type": "identityMap"},
            "commerce": _obj({"order": _obj({"purchaseID": _S, "priceTotal": {"type": "number"}, "currencyCode": _S})}),
            TENANT_FIELD: _obj(
                {
                    "order": _obj(
                        {
                            "status": _S,
                            "discountRate": {"type": "number"},
                            "isGift": {"type": "boolean"},
                            "loyaltyPoints": {"type": "integer"},
                            "shipDate": _DATETIME,
                        }
                    )
                }
            ),
        },
        ["_id", "timestamp"],
    ),
}

# Marketing Cloud's e-mail tracking events (sends, opens, clicks, bounces, unsubscribes), one dataset for all.
_INT = {"type": "integer"}
EMAIL_TRACKING_SCHEMA: dict[str, Any] = {
    "$id": _schema_id("sfmc-email-tracking"),
    "title": "SFMC Email Tracking",
    "meta:class": EVENT_CLASS,
    "meta:immutableTags": ["union"],
    **_obj(
        {
            "_id": _S,
            "timestamp": _DATETIME,
            "eventType": _S,
            "identityMap": {"type": "identityMap"},
            TENANT_FIELD: _obj({"emailTracking": _obj({
                "sendId": _INT, "eventType": _S, "batchId": _INT, "triggeredSendDefinitionObjectId": _S,
                "listId": _INT, "url": _S, "urlId": _INT, "bounceCategory": _S, "bounceType": _S, "smtpCode": _S,
                "smtpReason": _S, "isMasterUnsubscribed": {"type": "boolean"},
            })}),
        },
        ["_id", "timestamp"],
    ),
}

PROFILE_TAGS: dict[str, list[str]] = {"unifiedProfile": ["enabled:true"], "unifiedIdentity": ["enabled:true"]}


@dataclass(frozen=True)
class SeedDataset:
    """A dataset that exists in every fresh sandbox, with a deterministic Catalog id."""

    key: str
    id: str
    name: str
    schema: dict[str, Any]
    tags: dict[str, list[str]] = field(default_factory=lambda: copy.deepcopy(PROFILE_TAGS))


# Catalog dataset ids are 24 hex characters in Adobe's examples; these are fixed so configuration and
# tests can name them.
SEED_DATASETS: tuple[SeedDataset, ...] = (
    SeedDataset("contacts", "5ad0c0a1e0c7a5d000000001", "SFMC Contacts", CONTACTS_SCHEMA),
    SeedDataset("engagement", "5ad0c0a1e0c7a5d000000002", "SFMC Campaign Engagement", ENGAGEMENT_SCHEMA),
    SeedDataset("activities", "5ad0c0a1e0c7a5d000000003", "SFMC Web Activities", ACTIVITIES_SCHEMA),
    SeedDataset("orders", "5ad0c0a1e0c7a5d000000004", "SFMC Orders", ORDERS_SCHEMA),
    SeedDataset("email_tracking", "5ad0c0a1e0c7a5d000000005", "SFMC Email Tracking", EMAIL_TRACKING_SCHEMA),
)


class SchemaError(ValueError):
    """A schema dict that the sandbox cannot validate against."""


_TYPES = {"object", "string", "number", "integer", "boolean", "identityMap", "array"}


def normalise_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Check a schema dict and return a copy with the class-mandated required fields added.

    ExperienceEvent makes ``_id`` and ``timestamp`` required whatever the author wrote, so a
    registered event schema cannot forget them.
    """
    if not isinstance(schema, dict) or not isinstance(schema.get("$id"), str) or not schema["$id"]:
        raise SchemaError("schema needs a string '$id'")
    if schema.get("meta:class") not in (PROFILE_CLASS, EVENT_CLASS):
        raise SchemaError(f"'meta:class' must be {PROFILE_CLASS} or {EVENT_CLASS}")
    out = copy.deepcopy(schema)
    out.setdefault("type", "object")
    out.setdefault("properties", {})
    _check_node(out, "#")
    if out["meta:class"] == EVENT_CLASS:
        out["properties"].setdefault("_id", dict(_S))
        out["properties"].setdefault("timestamp", dict(_DATETIME))
        out["required"] = sorted(set(out.get("required", [])) | {"_id", "timestamp"})
    return out


def _check_node(node: Any, where: str) -> None:
    if not isinstance(node, dict) or node.get("type") not in _TYPES:
        raise SchemaError(f"{where}: 'type' must be one of {sorted(_TYPES)}")
    if node["type"] == "object":
        props = node.get("properties")
        if not isinstance(props, dict):
            raise SchemaError(f"{where}: object needs 'properties'")
        for name, child in props.items():
            _check_node(child, f"{where}/{name}")
        missing = set(node.get("required", [])) - set(props)
        if missing:
            raise SchemaError(f"{where}: required names unknown properties {sorted(missing)}")
    elif node["type"] == "array":
        _check_node(node.get("items"), f"{where}/items")


# ---------------------------------------------------------------------------------------------------
# Validation


@dataclass
class RowError:
    """One violation, in the shape of Platform's validation reports."""

    code: str
    pointer: str
    keyword: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {
            "code": self.code,
            "pointerToViolation": self.pointer,
            "keyword": self.keyword,
            "message": self.message,
        }


# RFC 3339 date-time: Platform's examples always carry an offset.
_DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _type_name(value: Any) -> str:
    """The XDM/JSON type name Platform's messages use ("expected type: String, found: Long")."""
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Long"
    if isinstance(value, (float, decimal.Decimal)):
        return "Double"
    if isinstance(value, str):
        return "String"
    if isinstance(value, dict):
        return "JSONObject"
    if isinstance(value, (list, tuple)):
        return "JSONArray"
    if isinstance(value, dt.datetime):
        return "Timestamp"
    if isinstance(value, dt.date):
        return "Date"
    return type(value).__name__


def _iso(value: dt.datetime) -> str:
    if value.tzinfo is None:  # naive Parquet timestamps are taken as UTC
        value = value.replace(tzinfo=dt.timezone.utc)
    value = value.astimezone(dt.timezone.utc)
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_datetime(value: str) -> dt.datetime | None:
    if not _DATETIME_RE.match(value):
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")[:35])
    except ValueError:
        return None


@dataclass
class Validator:
    """Validates and normalises one record against a dataset schema.

    ``from_parquet`` changes one rule: Parquet columns cannot be omitted per row, so a null there means
    "absent" (and an all-null struct is dropped), whereas an explicit JSON ``null`` is rejected as the doc
    says ("does not accept null or empty values ... the key should be excluded").
    """

    schema: dict[str, Any]
    require_primary_identity: bool = False
    known_namespaces: tuple[str, ...] = STANDARD_NAMESPACES + CUSTOM_NAMESPACES
    errors: list[RowError] = field(default_factory=list)
    _parquet: bool = field(default=False, repr=False)

    def validate(self, record: Any, *, from_parquet: bool) -> tuple[dict[str, Any] | None, list[RowError]]:
        """Return (normalised record, []) or (None, errors); at most five errors per row."""
        self.errors = []
        self._parquet = from_parquet
        if not isinstance(record, dict):
            return None, [
                RowError(CODE_CORRUPT, "#", "type", f"expected type: JSONObject, found: {_type_name(record)}")
            ]
        out = self._object(self.schema, record, "#")
        if not self.errors:
            self._check_event_timestamp(out)
            self._check_primary_identity(out)
        errors = self.errors[:MAX_ERRORS_PER_ROW]
        return (None, errors) if errors else (out, [])

    def _err(self, code: str, pointer: str, keyword: str, message: str) -> None:
        self.errors.append(RowError(code, pointer, keyword, message))

    def _object(self, node: dict[str, Any], value: dict[str, Any], ptr: str) -> dict[str, Any]:
        props: dict[str, Any] = node.get("properties", {})
        out: dict[str, Any] = {}
        for key, item in value.items():
            child_ptr = f"{ptr}/{key}"
            if key not in props:
                if item is None and self._parquet:
                    continue
                self._err(
                    CODE_CORRUPT,
                    child_ptr,
                    "additionalProperties",
                    f"extraneous key [{key}] is not permitted",
                )
                continue
            if item is None:
                if not self._parquet:
                    self._err(
                        CODE_REQUIRED, child_ptr, "type", f"null is not accepted for [{key}]; omit the key"
                    )
                continue
            converted = self._value(props[key], item, child_ptr)
            if converted is not None:
                out[key] = converted
        for key in node.get("required", []):
            if key not in out and not any(e.pointer.startswith(f"{ptr}/{key}") for e in self.errors):
                self._err(CODE_REQUIRED, f"{ptr}/{key}", "required", f"required key [{key}] not found")
        return out

    def _value(self, node: dict[str, Any], value: Any, ptr: str) -> Any:
        kind = node["type"]
        if kind == "object":
            if (
                isinstance(value, (list, tuple))
                and self._parquet
                and all(isinstance(p, tuple) for p in value)
            ):
                value = dict(value)  # Parquet map -> object (Object<->Map is convertible)
            if not isinstance(value, dict):
                return self._type_error(ptr, "JSONObject", value)
            obj = self._object(node, value, ptr)
            if not obj and self._parquet:
                return None  # an all-null struct is an absent object
            if not obj and not value:
                self._err(CODE_REQUIRED, ptr, "minProperties", "empty object is not accepted; omit the key")
            return obj or None
        if kind == "identityMap":
            return self._identity_map(value, ptr)
        if kind == "array":
            if not isinstance(value, (list, tuple)):
                return self._type_error(ptr, "JSONArray", value)
            return [self._value(node["items"], v, f"{ptr}/{i}") for i, v in enumerate(value)]
        if kind == "string":
            return self._string(node, value, ptr)
        if kind == "boolean":
            return value if isinstance(value, bool) else self._type_error(ptr, "Boolean", value)
        if kind == "integer":
            return self._integer(value, ptr)
        return self._number(value, ptr)

    def _type_error(self, ptr: str, expected: str, value: Any) -> None:
        self._err(CODE_CORRUPT, ptr, "type", f"expected type: {expected}, found: {_type_name(value)}")

    def _string(self, node: dict[str, Any], value: Any, ptr: str) -> Any:
        fmt = node.get("format")
        if fmt == "date-time":
            return self._datetime(value, ptr)
        if fmt == "date":
            if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
                return value.isoformat()
            if isinstance(value, str) and _DATE_RE.match(value):
                try:
                    return dt.date.fromisoformat(value).isoformat()
                except ValueError:
                    pass
            self._err(CODE_CORRUPT, ptr, "format", f"[{value}] is not a valid date")
            return None
        if not isinstance(value, str):
            return self._type_error(ptr, "String", value)
        if value == "":
            self._err(CODE_REQUIRED, ptr, "minLength", "empty string is not accepted; omit the key")
            return None
        enum = node.get("enum")
        if enum and value not in enum:
            self._err(CODE_CORRUPT, ptr, "enum", f"{value} is not a valid enum value")
        return value

    def _datetime(self, value: Any, ptr: str) -> str | None:
        # ISO-8601 strings, epoch milliseconds (Long -> Date-Time is allowed) or Parquet timestamps.
        if isinstance(value, dt.datetime):
            return _iso(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return _iso(_EPOCH + dt.timedelta(milliseconds=value))
        if isinstance(value, str):
            parsed = _parse_datetime(value)
            if parsed is not None:
                return _iso(parsed)
            self._err(
                CODE_CORRUPT,
                ptr,
                "format",
                f"[{value}] is not a valid date-time. Expected [yyyy-MM-ddTHH:mm:ss(.SSS)(Z|+hh:mm)]",
            )
            return None
        return self._type_error(ptr, "String", value)

    def _integer(self, value: Any, ptr: str) -> int | None:
        if isinstance(value, bool):
            return self._type_error(ptr, "Integer", value)
        if isinstance(value, int):
            return value
        if isinstance(value, decimal.Decimal) and value == value.to_integral_value():
            return int(value)
        if isinstance(value, str):  # String -> numeric is a documented coercion
            try:
                return int(value.strip())
            except ValueError:
                self._err(CODE_CORRUPT, ptr, "type", f"[{value}] cannot be converted to Integer")
                return None
        return self._type_error(ptr, "Integer", value)

    def _number(self, value: Any, ptr: str) -> float | int | None:
        if isinstance(value, bool):
            return self._type_error(ptr, "Number", value)
        if isinstance(value, decimal.Decimal):
            value = float(value)
        if isinstance(value, (int, float)):
            if isinstance(value, float) and not math.isfinite(value):
                self._err(CODE_CORRUPT, ptr, "type", f"[{value}] is not a finite number")
                return None
            return value
        if isinstance(value, str):
            try:
                parsed = float(value.strip())
            except ValueError:
                parsed = math.nan
            if math.isfinite(parsed):
                return parsed
            self._err(CODE_CORRUPT, ptr, "type", f"[{value}] cannot be converted to Number")
            return None
        return self._type_error(ptr, "Number", value)

    def _identity_map(self, value: Any, ptr: str) -> dict[str, Any] | None:
        if isinstance(value, (list, tuple)) and self._parquet and all(isinstance(p, tuple) for p in value):
            value = dict(value)  # Parquet map<string, list<struct>>
        if not isinstance(value, dict):
            return self._type_error(ptr, "JSONObject", value)
        known = {ns.lower(): ns for ns in self.known_namespaces}
        out: dict[str, Any] = {}
        for ns, identities in value.items():
            ns_ptr = f"{ptr}/{ns}"
            if identities is None and self._parquet:
                continue
            if not isinstance(ns, str) or ns.lower() not in known:
                # Stricter than the data lake (which stores any key; Identity Service then drops it) so a
                # misspelt namespace is caught here rather than silently missing from Profile.
                self._err(CODE_CORRUPT, ns_ptr, "propertyNames", f"unknown identity namespace [{ns}]")
                continue
            if not isinstance(identities, (list, tuple)) or not identities:
                self._err(CODE_CORRUPT, ns_ptr, "type", "expected a non-empty JSONArray of identities")
                continue
            items = []
            for i, ident in enumerate(identities):
                item = self._identity(ident, f"{ns_ptr}/{i}")
                if item is not None:
                    items.append(item)
            out[ns] = items
        if not out and not self.errors:
            if self._parquet:
                return None
            self._err(CODE_REQUIRED, ptr, "minProperties", "empty identityMap is not accepted; omit the key")
        return out or None

    def _identity(self, ident: Any, ptr: str) -> dict[str, Any] | None:
        if not isinstance(ident, dict):
            return self._type_error(ptr, "JSONObject", ident)
        if self._parquet:
            ident = {k: v for k, v in ident.items() if v is not None}
        item: dict[str, Any] = {}
        for key, val in ident.items():
            if val is None and key in ("id", "primary", "authenticatedState"):
                self._err(
                    CODE_REQUIRED, f"{ptr}/{key}", "type", f"null is not accepted for [{key}]; omit the key"
                )
            elif key == "id":
                if not isinstance(val, str):
                    self._type_error(f"{ptr}/id", "String", val)
                elif not val:
                    self._err(CODE_REQUIRED, f"{ptr}/id", "minLength", "empty identity id")
                else:
                    item["id"] = val
            elif key == "primary":
                if isinstance(val, bool):
                    item["primary"] = val
                else:
                    self._type_error(f"{ptr}/primary", "Boolean", val)
            elif key == "authenticatedState":
                if val in AUTHENTICATED_STATES:
                    item["authenticatedState"] = val
                else:
                    self._err(
                        CODE_CORRUPT, f"{ptr}/authenticatedState", "enum", f"{val} is not a valid enum value"
                    )
            else:
                self._err(
                    CODE_CORRUPT,
                    f"{ptr}/{key}",
                    "additionalProperties",
                    f"extraneous key [{key}] is not permitted",
                )
        if "id" not in item and not any(e.pointer == f"{ptr}/id" for e in self.errors):
            self._err(CODE_REQUIRED, f"{ptr}/id", "required", "required key [id] not found")
        return item

    def _check_event_timestamp(self, record: dict[str, Any]) -> None:
        # "must be in the past and >= 1970".  The future check is left out so that clock skew
        # between a test host and the sandbox cannot fail a batch.
        stamp = record.get("timestamp")
        if self.schema.get("meta:class") == EVENT_CLASS and isinstance(stamp, str) and stamp < "1970-01-01T":
            self._err(CODE_CORRUPT, "#/timestamp", "format", "timestamp must be at or after 1970-01-01")

    def _check_primary_identity(self, record: dict[str, Any]) -> None:
        primaries = [
            i for ids in (record.get("identityMap") or {}).values() for i in ids if i.get("primary") is True
        ]
        if len(primaries) > 1:
            self._err(CODE_CORRUPT, "#/identityMap", "primary", "more than one identity is marked primary")
        elif self.require_primary_identity and not primaries:
            # A Profile-enabled dataset needs a primary identity on every record.
            self._err(
                CODE_REQUIRED,
                "#/identityMap",
                "required",
                "a primary identity is required for a Profile-enabled dataset",
            )


def schema_field_paths(schema: dict[str, Any]) -> dict[str, str]:
    """Flatten a schema to {dotted path: type}, for documentation and tests."""
    out: dict[str, str] = {}

    def walk(node: dict[str, Any], prefix: str) -> None:
        for name, child in node.get("properties", {}).items():
            path = f"{prefix}{name}"
            if child["type"] == "object":
                walk(child, f"{path}.")
            else:
                out[path] = child.get("format", child["type"])

    walk(schema, "")
    return out

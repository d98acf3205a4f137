"""Helpers of the Experience Platform tests: fast retry settings, clients for a sandbox, canonical frames.

A plain module rather than a conftest, so the tests also run with `--noconftest`.
"""

import datetime as dt
import decimal
import uuid

import polars as pl

from sfmc_assets.lib.canonical import MONEY, UTC_DATETIME
from sfmc_assets.lib.config import load_config
from sfmc_assets.lib.experience_platform import ExperiencePlatformClient, RetrySettings, XdmMapping
from sfmc_assets.sandboxes.experience_platform import ExperiencePlatformSandbox

FAST_RETRY = RetrySettings(max_attempts=4, max_total_s=10.0, backoff_initial_s=0.02, backoff_max_s=0.2,
                           retry_after_cap_s=0.1)
#: Poll settings that keep a publish against the sandbox (0.05 s processing) well under a second.
FAST_WAIT = {"deadline_s": 10.0, "poll_initial_s": 0.03, "poll_max_s": 0.2}


def make_client(sandbox: ExperiencePlatformSandbox, **overrides: object) -> ExperiencePlatformClient:
    info = {**sandbox.discovery(), **overrides}
    kwargs = {k: info.pop(k) for k in ("retry", "max_file_bytes", "logger", "token_cache") if k in info}
    kwargs.setdefault("retry", FAST_RETRY)
    return ExperiencePlatformClient.from_discovery(info, **kwargs)


def configured_mappings() -> dict[str, XdmMapping]:
    """The bundled configuration's XDM mappings (`aep:` in data_extensions.yaml), keyed by kind: the tests
    map with exactly what the assets publish with."""
    return {de.kind: de.aep for de in load_config().data_extensions if de.aep is not None}


def unique_label(prefix: str) -> str:
    return f"{prefix}/{uuid.uuid4().hex[:8]}"


def _utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.timezone.utc)


def contacts_frame(prefix: str = "c") -> pl.DataFrame:
    """Three clean contacts: one complete, one with most optional values null, one with a blank string."""
    return pl.DataFrame(
        {
            "contact_key": [f"{prefix}-1", f"{prefix}-2", f"{prefix}-3"],
            "email": ["ann@example.com", "bob@example.org", "cy@example.net"],
            "first_name": ["Ann", None, "Cyrille"],
            "last_name": ["Lee", None, ""],
            "lifecycle_stage": ["new", "loyal", "inactive"],
            "opt_in": [True, False, True],
            "total_orders": [1, None, 7],
            "lifetime_value": [decimal.Decimal("10.50"), None, decimal.Decimal("1234.99")],
            "last_order_at": [_utc(2026, 9, 30, 12), None, _utc(2025, 1, 2, 3, 4, 5)],
            "locale": ["fr-FR", None, "en-US"],
            "phone": [None, "+33 6 00 00 00 00", None],
            "modified_at": [_utc(2026, 10, 1, 8), _utc(2026, 10, 1, 9), _utc(2026, 10, 1, 10)],
            "days_since_last_order": [1, None, 637],
            "partition_date": [dt.date(2026, 10, 1)] * 3,
            "_parse_errors": [None, None, None],
        },
        schema_overrides={
            "lifetime_value": MONEY,
            "last_order_at": UTC_DATETIME,
            "modified_at": UTC_DATETIME,
            "first_name": pl.String,
            "last_name": pl.String,
            "locale": pl.String,
            "phone": pl.String,
            "_parse_errors": pl.String,
        },
    )


def engagement_frame(prefix: str = "e") -> pl.DataFrame:
    actions = ["send", "open", "click", "response", "unsubscribe", "bounce"]
    return pl.DataFrame(
        {
            "engagement_id": [f"{prefix}-{i}" for i in range(len(actions))],
            "contact_key": ["c-1", "c-1", "c-1", "c-2", "c-2", "c-3"],
            "campaign_id": ["SPRING-26"] * len(actions),
            "campaign_name": ["Spring sale", None, "Spring sale", "Spring sale", "Spring sale", None],
            "channel": ["email"] * len(actions),
            "action": actions,
            "sentiment": [None, None, None, "negative", None, None],
            "link_url": [None, None, "https://example.com/sale", None, None, None],
            "event_at": [_utc(2026, 10, 1, h) for h in range(len(actions))],
            "partition_date": [dt.date(2026, 10, 1)] * len(actions),
            "_parse_errors": [None] * len(actions),
        },
        schema_overrides={"event_at": UTC_DATETIME, "sentiment": pl.String, "link_url": pl.String,
                          "_parse_errors": pl.String},
    )


def activities_frame(prefix: str = "a") -> pl.DataFrame:
    kinds = ["page_view", "form_submission", "purchase", "email_open", "email_click"]
    return pl.DataFrame(
        {
            "activity_id": [f"{prefix}-{i}" for i in range(len(kinds))],
            "contact_key": ["c-1", "c-2", "c-2", "c-3", "c-3"],
            "activity_kind": kinds,
            "page_url": ["https://example.com/", None, None, None, None],
            "form_name": [None, "newsletter", None, None, None],
            "order_id": [None, None, "O-1", None, None],
            "order_amount": [None, None, decimal.Decimal("99.90"), None, None],
            "activity_at": [_utc(2026, 10, 1, 12, m) for m in range(len(kinds))],
            "partition_date": [dt.date(2026, 10, 1)] * len(kinds),
            "_parse_errors": [None] * len(kinds),
        },
        schema_overrides={"activity_at": UTC_DATETIME, "order_amount": MONEY, "page_url": pl.String,
                          "form_name": pl.String, "order_id": pl.String, "_parse_errors": pl.String},
    )

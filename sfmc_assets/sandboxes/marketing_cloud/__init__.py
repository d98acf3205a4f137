"""A local Salesforce Marketing Cloud: the project's embedded default and its test target.

`MarketingCloudSandbox(state_dir).start()` serves, on loopback, the token endpoint, the data extension
rowset and metadata routes and the upsert route with Marketing Cloud's wire formats, over a
deterministic tenant of three data extensions (contacts, campaign engagement, web activities) stored
in DuckDB, and the SOAP endpoint's `Retrieve` of the e-mail tracking objects (`tracking.py`). Fault knobs
make it throttle, fail, drop connections, expire tokens, serve broken pages or change rows and columns
under a reader. See `server.py` for routes and `tenant.py` for the data.
"""

import datetime as dt
import secrets
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from .faults import Fault
from .server import SandboxServer
from .tenant import DEFAULT_ROWS, SERVER_OFFSET, DataExtension, Field, Tenant, _ident
from .tracking import DEFAULT_SENDS_PER_DAY, Cursors, TrackingEvents

__all__ = ["DEFAULT_ROWS", "Fault", "MarketingCloudSandbox"]

ACCOUNT_ID = "510000001"
BAD_ROW_KINDS = ("invalid_email", "missing_required", "duplicate_key", "unparseable_date", "unparseable_number",
                 "unparseable_boolean", "unmapped_value")


class MarketingCloudSandbox:
    """One sandbox tenant served over HTTP on loopback."""

    def __init__(
        self,
        state_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 7,
        start: dt.date | None = None,
        end: dt.date | None = None,
        rows: Mapping[str, int] | None = None,
        client_id: str = "sandbox-client-id",
        client_secret: str | None = None,
        token_ttl_seconds: float = 1200.0,
        token_limit: int | None = None,
        token_window_s: float = 1200.0,
        sends_per_day: int = DEFAULT_SENDS_PER_DAY,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        today = dt.datetime.now(dt.timezone.utc).date()
        self.data_end = end or today
        self.data_start = start or (self.data_end - dt.timedelta(days=30))
        self.client_id = client_id
        self.client_secret = client_secret or self._persisted_secret()
        self.account_id = ACCOUNT_ID
        self.token_ttl_seconds = token_ttl_seconds
        #: At most this many token requests per `token_window_s` (None: unlimited); more get 429 / 50200.
        self.token_limit = token_limit
        self.token_window_s = token_window_s
        self.tenant = Tenant(self.state_dir / "tenant.duckdb", seed=seed, start=self.data_start, end=self.data_end,
                             rows={**DEFAULT_ROWS, **(rows or {})})
        #: E-mail tracking events, served by `POST /Service.asmx` (`tracking.py`, `soap.py`).
        self.tracking = TrackingEvents(self.tenant, sends_per_day=sends_per_day)
        self.soap_cursors = Cursors(self.tracking)
        self._server = SandboxServer((host, port), self)
        self._thread: threading.Thread | None = None

    def _de(self, key: str) -> DataExtension:
        de = self.tenant.get(key)
        if de is None:
            raise KeyError(f"Data Extension cannot be retrieved for key {key}.")
        return de

    def _persisted_secret(self) -> str:
        path = self.state_dir / "client_secret"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(24), encoding="utf-8")
            path.chmod(0o600)
        return path.read_text(encoding="utf-8").strip()

    # -- lifecycle ------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    @property
    def faults(self) -> Any:
        return self._server.faults

    def start(self) -> "MarketingCloudSandbox":
        self._thread = threading.Thread(target=self._server.serve_forever, name="mc-sandbox", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)
        self.tenant.close()

    def __enter__(self) -> "MarketingCloudSandbox":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def discovery(self) -> dict[str, Any]:
        return {"auth_base_uri": self.url, "client_id": self.client_id, "client_secret": self.client_secret,
                "account_id": self.account_id}

    # -- knobs ----------------------------------------------------------------------------------------

    def set_faults(self, faults: Sequence[Fault]) -> None:
        self._server.faults.set(list(faults))

    def clear_faults(self) -> None:
        self._server.faults.clear()

    def expire_tokens(self) -> None:
        with self._server.lock:
            self._server.tokens.clear()

    def stats(self) -> dict[str, int]:
        with self._server.stats_lock:
            return dict(self._server.stats)

    def reset_stats(self) -> None:
        with self._server.stats_lock:
            self._server.stats.clear()
            self._server.queries.clear()

    def queries(self) -> list[str]:
        """The raw query strings of the API calls served (newest last, at most 10,000), as sent."""
        with self._server.stats_lock:
            return list(self._server.queries)

    # -- data -----------------------------------------------------------------------------------------

    def ground_truth(self, key: str, start_utc: dt.datetime | None = None,
                     end_utc: dt.datetime | None = None) -> pl.DataFrame:
        return self.tenant.ground_truth(key, start_utc, end_utc)

    def upsert_rows(self, key: str, rows: Sequence[Mapping[str, Any]]) -> None:
        self.tenant.upsert(key, rows)

    def delete_rows(self, key: str, where_sql: str, params: Sequence[Any] | None = None) -> int:
        de = self._de(key)
        before = self.tenant.count(de)
        self.tenant.execute(f"DELETE FROM {de.table} WHERE {where_sql}", params)
        return before - self.tenant.count(de)

    def alter_schema(self, key: str, *, add: Mapping[str, str] | None = None, drop: Sequence[str] | None = None,
                     retype: Mapping[str, str] | None = None) -> None:
        self.tenant.alter(key, add=add, drop=drop, retype=retype)

    def create_data_extension(self, key: str, name: str, fields: Sequence[Mapping[str, Any]],
                              rows: Sequence[Mapping[str, Any]] | None = None, delta: str | None = None, *,
                              description: str = "", sendable: bool = False) -> None:
        specs = [Field(f["name"], f["type"], f.get("length"), f.get("scale"), bool(f.get("isPrimaryKey")),
                       bool(f.get("isNullable", True)) and not f.get("isPrimaryKey"), i + 1)
                 for i, f in enumerate(fields)]
        self.tenant.create(DataExtension(key, name, specs, delta, description, sendable))
        if rows:
            self.tenant.upsert(key, rows)

    def inject_bad_rows(self, key: str, kind: str, day: dt.date, n: int = 3) -> list[str]:
        """Copy `n` rows into the UTC `day` with one defect of `kind`; returns their primary keys."""
        if kind not in BAD_ROW_KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {BAD_ROW_KINDS}")
        de = self._de(key)
        pk = (de.pk or de.fields)[0].name
        noon = dt.datetime.combine(day, dt.time(12), tzinfo=dt.timezone.utc)
        rows: list[dict[str, Any]] = []
        for i, row in enumerate(self.ground_truth(key).head(n).to_dicts()):
            row[pk] = f"BAD-{kind}-{day:%Y%m%d}-{0 if kind == 'duplicate_key' else i}"
            if de.delta:
                row[de.delta] = noon + dt.timedelta(minutes=0 if kind == "duplicate_key" else i)
            raw = _defect(de, key, kind, row, i)
            if raw:
                row["_raw"] = raw
            rows.append(row)
        if kind == "duplicate_key":
            return self._insert_duplicates(de, rows)
        self.tenant.upsert(key, rows)
        return [r[pk] for r in rows]

    def _insert_duplicates(self, de: DataExtension, rows: list[dict[str, Any]]) -> list[str]:
        """Insert without the primary-key replace, so the same key appears twice."""
        pk = de.pk[0].name
        names = [f.name for f in de.fields]
        with self.tenant.lock, self.tenant.cursor() as cur:
            for row in rows:
                values = [self.tenant._value(de.field(n), row.get(n)) for n in names]
                marks = ", ".join("?" for _ in names)
                cur.execute(f"INSERT INTO {de.table} ({', '.join(_ident(n) for n in names)}, _raw) "
                            f"VALUES ({marks}, NULL)", values)
            self.tenant._changed()
        return sorted({r[pk] for r in rows})


SERVER_UTC_OFFSET = SERVER_OFFSET


#: The column holding a canonical enumeration in each sandbox data extension (for `unmapped_value`).
_TEXT_ENUMS = {"Contacts_DE": "CustomerStage", "Campaign_Engagement": "EventName", "Web_Activities": "ActivityType"}


def _defect(de: DataExtension, key: str, kind: str, row: dict[str, Any], i: int) -> dict[str, str]:
    """Give `row` one defect of `kind` (in place); returns the raw values to serve verbatim, if any."""
    if kind == "invalid_email":
        email = next((f.name for f in de.fields if f.type == "EmailAddress"), None)
        if email is None:
            raise ValueError(f"{key} has no EmailAddress column for {kind!r}")
        row[email] = ["not-an-email", "a@@b", "plain text"][i % 3]
    elif kind == "missing_required":
        col = next(f.name for f in de.fields if not f.nullable and not f.primary_key and f.type != "Date")
        row[col] = None
    elif kind == "unmapped_value":
        if key not in _TEXT_ENUMS:
            raise ValueError(f"{key} has no enumerated column for {kind!r}")
        row[_TEXT_ENUMS[key]] = "VIP"
    elif kind == "duplicate_key":
        # A data extension whose key is not enforced (isPrimaryKey false in Marketing Cloud while the
        # pipeline keys on that column) can hold the same business key twice: here n rows share one new
        # key and one delta value inside the day, with different other values.
        text = next(f.name for f in de.fields if f.type == "Text" and not f.primary_key)
        row[text] = f"{row[text]} #{i}"
    elif kind.startswith("unparseable_"):
        return _unparseable(de, key, kind)
    return {}


def _unparseable(de: DataExtension, key: str, kind: str) -> dict[str, str]:
    """A value that does not parse as its column's type, served verbatim.

    Marketing Cloud stores typed columns, so such values only exist in Text columns holding dates,
    numbers or booleans. The store keeps the typed value (so filters still place the row in its day) plus
    this per-row raw override."""
    wanted = {"date": ("Date",), "number": ("Number", "Decimal"), "boolean": ("Boolean",)}[kind.split("_", 1)[1]]
    candidates = [f for f in de.fields if f.type in wanted and not f.primary_key]
    # Prefer a column other than the delta one; the delta column itself is the fallback.
    col_field = next((f for f in candidates if f.name != de.delta), candidates[0] if candidates else None)
    if col_field is None:
        raise ValueError(f"{key} has no {'/'.join(wanted)} column for {kind!r}")
    return {col_field.name: {"Date": "13/45/2026 99:00:00 XM", "Number": "4.5e", "Decimal": "12,3.4",
                             "Boolean": "Yes"}[col_field.type]}

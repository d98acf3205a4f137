"""The warehouse holding the segment-ready tables, written in one place, on one of two backends.

Tables are partitioned by `as_of_date`; writing days replaces exactly those days (delete, then insert,
in one transaction), so re-running a day or a range never leaves two sets of rows for a day. Both
backends keep that contract (`replace_days`, `query` with `?` placeholders):

- DuckDB (`Warehouse`, a file: the default, one machine). DuckDB allows one writing process per file: a
  second writer waits (bounded) instead of failing at once.
- PostgreSQL (`PostgresWarehouse`, `SFMC_ASSETS_WAREHOUSE=postgresql://user@host/db`): for run workers on
  several machines writing days at once. Writers of different days proceed in parallel; writers of the
  same (table, day) take turns on a transaction-level advisory lock, so none can delete the rows another
  is inserting and leave the day doubled.

`open_warehouse(location)` picks the backend from the location.
"""

import datetime as dt
import hashlib
import io
import re
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, Protocol

import duckdb
import polars as pl
import psycopg2
from sqlalchemy.engine import make_url
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_random_exponential

SCHEMA = "segments"
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_POSTGRES_URL = re.compile(r"^postgres(?:ql)?(?:\+\w+)?://")


class DayTables(Protocol):
    """What the segment assets and checks need from a warehouse, whatever its backend."""

    def replace_days(self, table: str, frame: pl.DataFrame, days: Sequence[dt.date]) -> int: ...

    def query(self, sql: str, params: Sequence[object] | None = None) -> pl.DataFrame: ...


def open_warehouse(location: str | Path) -> "Warehouse | PostgresWarehouse":
    """A PostgreSQL URL (`postgresql://...`, `postgresql+psycopg2://...`) or the path of a DuckDB file."""
    if isinstance(location, str) and _POSTGRES_URL.match(location):
        return PostgresWarehouse(location)
    return Warehouse(location)


def _check_days(table: str, frame: pl.DataFrame, days: Sequence[dt.date]) -> None:
    if not _NAME.match(table):
        raise ValueError(f"bad table name {table!r}")
    bad = [c for c in frame.columns if not _NAME.match(c)]
    if bad:
        raise ValueError(f"{table}: bad column names {bad}")
    extra = set(frame["as_of_date"].unique().to_list()) - set(days) if frame.height else set()
    if extra:
        raise ValueError(f"{table}: rows for {sorted(extra)} outside the days being replaced")


class Warehouse:
    """The DuckDB file backend."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = self._open(read_only)
        try:
            yield con
        finally:
            con.close()

    @retry(retry=retry_if_exception_type(duckdb.IOException), stop=stop_after_delay(120),
           wait=wait_random_exponential(multiplier=0.2, max=5), reraise=True)
    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        if read_only and not self.path.exists():
            raise FileNotFoundError(f"the warehouse {self.path} does not exist yet")
        return duckdb.connect(str(self.path), read_only=read_only)

    def replace_days(self, table: str, frame: pl.DataFrame, days: Sequence[dt.date]) -> int:
        """Replace the rows of `days` in `table` by `frame` (which must only hold those days)."""
        _check_days(table, frame, days)
        qualified = f"{SCHEMA}.{table}"
        with self.connect() as con:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            incoming = frame.to_arrow()  # noqa: F841 - read by DuckDB's replacement scan below
            con.execute(f"CREATE TABLE IF NOT EXISTS {qualified} AS SELECT * FROM incoming LIMIT 0")
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(f"DELETE FROM {qualified} WHERE as_of_date IN (SELECT unnest(?::DATE[]))", [list(days)])
                con.execute(f"INSERT INTO {qualified} BY NAME SELECT * FROM incoming")
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
        return frame.height

    def query(self, sql: str, params: Sequence[object] | None = None) -> pl.DataFrame:
        with self.connect(read_only=True) as con:
            return con.execute(sql, params or []).pl()


def advisory_key(name: str) -> int:
    """A PostgreSQL advisory lock key for `name`: 64 bits of its SHA-256, stable across processes."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


#: PostgreSQL column type of each Polars type the segment tables use (others fail, naming the column).
_PG_TYPES: dict[type[pl.DataType], str] = {
    pl.Boolean: "BOOLEAN", pl.Int8: "SMALLINT", pl.Int16: "SMALLINT", pl.Int32: "INTEGER", pl.Int64: "BIGINT",
    pl.UInt8: "SMALLINT", pl.UInt16: "INTEGER", pl.UInt32: "BIGINT", pl.Float32: "REAL",
    pl.Float64: "DOUBLE PRECISION", pl.String: "TEXT", pl.Date: "DATE",
}
#: Polars type of each PostgreSQL type OID read back (the rest is inferred from the values).
_POLARS_TYPES: dict[int, pl.DataType] = {
    16: pl.Boolean(), 20: pl.Int64(), 21: pl.Int16(), 23: pl.Int32(), 700: pl.Float32(), 701: pl.Float64(),
    25: pl.String(), 1043: pl.String(), 1082: pl.Date(), 1114: pl.Datetime("us"),
    1184: pl.Datetime("us", "UTC"),
}
_NUMERIC = 1700
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|\?|%")


def _pg_type(table: str, column: str, dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMPTZ" if dtype.time_zone else "TIMESTAMP"
    if isinstance(dtype, pl.Decimal):
        return f"NUMERIC({dtype.precision},{dtype.scale})" if dtype.precision else "NUMERIC"
    if dtype.base_type() in _PG_TYPES:
        return _PG_TYPES[dtype.base_type()]
    raise TypeError(f"{SCHEMA}.{table}.{column}: no PostgreSQL column type for Polars {dtype}")


def _qmark_to_pyformat(sql: str) -> str:
    """`?` placeholders (DuckDB's) to psycopg2's `%s`; a literal `%` doubled, quoted text left as it is."""
    def sub(m: re.Match[str]) -> str:
        token = m.group(0)
        return "%s" if token == "?" else token.replace("%", "%%")
    return _TOKENS.sub(sub, sql)


class PostgresWarehouse:
    """The PostgreSQL backend: the same tables and `replace_days` contract, many concurrent writers.

    The URL's password may be left out and given as `PGPASSWORD` (libpq's variable, read by psycopg2),
    which keeps it out of the Dagster configuration entirely; it never appears in errors (`str(self)`).
    """

    def __init__(self, url: str) -> None:
        self._dsn = _POSTGRES_URL.sub("postgresql://", url, count=1)
        self.url = make_url(url).render_as_string(hide_password=True)

    def __str__(self) -> str:
        return self.url

    @contextmanager
    def connect(self) -> Iterator[Any]:
        """One connection in UTC, committed when the block succeeds, rolled back when it raises."""
        with closing(psycopg2.connect(self._dsn, options="-c timezone=UTC")) as con, con:
            yield con

    def replace_days(self, table: str, frame: pl.DataFrame, days: Sequence[dt.date]) -> int:
        """Replace the rows of `days` in `table` by `frame` (which must only hold those days)."""
        _check_days(table, frame, days)
        qualified = f"{SCHEMA}.{table}"
        self._ensure_table(table, frame.schema)
        columns = ", ".join(f'"{c}"' for c in frame.columns)
        with self.connect() as con, con.cursor() as cur:
            for day in sorted(set(days)):  # one order for every writer: no deadlock between them
                cur.execute("SELECT pg_advisory_xact_lock(%s)", [advisory_key(f"{qualified}/{day}")])
            cur.execute(f"DELETE FROM {qualified} WHERE as_of_date = ANY(%s::date[])", [sorted(set(days))])
            if frame.height:
                cur.copy_expert(f"COPY {qualified} ({columns}) FROM STDIN WITH (FORMAT csv, HEADER true)",
                                io.BytesIO(frame.write_csv().encode()))
        return frame.height

    def _ensure_table(self, table: str, schema: pl.Schema) -> None:
        """Create the schema and the table from the frame's types; concurrent creators take turns."""
        columns = ", ".join(f'"{c}" {_pg_type(table, c, t)}' for c, t in schema.items())
        with self.connect() as con, con.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [advisory_key(f"{SCHEMA} ddl")])
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            cur.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{table} ({columns})")

    def query(self, sql: str, params: Sequence[object] | None = None) -> pl.DataFrame:
        with self.connect() as con, con.cursor() as cur:
            cur.execute(_qmark_to_pyformat(sql), list(params or []))
            rows, description = cur.fetchall(), cur.description
        names = [d.name for d in description]
        known = {d.name: t for d in description if (t := _polars_type(d)) is not None}
        return pl.DataFrame(rows, schema=names, schema_overrides=known, orient="row")


def _polars_type(column: Any) -> pl.DataType | None:
    """The Polars type of a result column (psycopg2's description), so an empty result is typed too."""
    if column.type_code == _NUMERIC and column.precision is not None:
        return pl.Decimal(column.precision, column.scale)
    return _POLARS_TYPES.get(column.type_code)

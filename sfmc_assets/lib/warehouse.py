"""The warehouse: a DuckDB file holding the segment-ready tables, written in one place.

Tables are partitioned by `as_of_date`; writing days replaces exactly those days (delete, then insert,
in one transaction), so re-running a day or a range never leaves two sets of rows for a day. DuckDB
allows one writing process per file: a second writer waits (bounded) instead of failing at once.
"""

import datetime as dt
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_random_exponential

SCHEMA = "segments"
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


class Warehouse:
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
        if not _NAME.match(table):
            raise ValueError(f"bad table name {table!r}")
        extra = set(frame["as_of_date"].unique().to_list()) - set(days) if frame.height else set()
        if extra:
            raise ValueError(f"{table}: rows for {sorted(extra)} outside the days being replaced")
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

"""A contact's rows in the warehouse: deleted from every segment table, then the storage rewritten.

A DELETE only marks rows: DuckDB keeps their bytes in the file's blocks, PostgreSQL in dead tuples,
until the storage is rewritten. So after deleting, a DuckDB warehouse is copied into a fresh file
(`COPY FROM DATABASE`) that replaces the old one, and a PostgreSQL table is rewritten by `VACUUM FULL`.
PostgreSQL's write-ahead log and backups keep old pages for their own retention period: erasure from
those is the database's retention, not this code's (docs/personal-data.md).
"""

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg2

from sfmc_assets.lib.privacy.matching import Matcher
from sfmc_assets.lib.warehouse import SCHEMA, PostgresWarehouse, Warehouse

#: Columns of the warehouse tables that say whose row it is.
PERSON_COLUMNS = ("contact_key", "email")
#: (table, as_of_date) -> rows erased.
Erased = dict[tuple[str, dt.date | None], int]


def _where(hits: dict[str, list[str]], placeholder: str) -> tuple[str, list[Any]]:
    clauses, params = [], []
    for column, values in hits.items():
        clauses.append(f'"{column}" IN ({", ".join([placeholder] * len(values))})')
        params += values
    return " OR ".join(clauses), params


def _duckdb_tables(con: Any) -> dict[str, list[str]]:
    rows = con.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = ? "
        "AND column_name IN ('contact_key', 'email', 'as_of_date') ORDER BY table_name, ordinal_position",
        [SCHEMA]).fetchall()
    tables: dict[str, list[str]] = {}
    for table, column in rows:
        tables.setdefault(table, []).append(column)
    return tables


def _erase_rows(cursor: Any, tables: dict[str, list[str]], matcher: Matcher, placeholder: str) -> Erased:
    """Delete the matching rows of every table; (table, day) -> rows."""
    erased: Erased = {}
    for table, columns in tables.items():
        hits: dict[str, list[str]] = {}
        for column in (c for c in columns if c in PERSON_COLUMNS):
            cursor.execute(f'SELECT DISTINCT "{column}" FROM {SCHEMA}.{table}')
            found = matcher.matching(r[0] for r in cursor.fetchall())
            if found:
                hits[column] = found
        if not hits:
            continue
        where, params = _where(hits, placeholder)
        day = "as_of_date" if "as_of_date" in columns else "NULL"
        cursor.execute(f"SELECT {day}, count(*) FROM {SCHEMA}.{table} WHERE {where} GROUP BY 1", params)
        for as_of, rows in cursor.fetchall():
            erased[(table, as_of)] = int(rows)
        cursor.execute(f"DELETE FROM {SCHEMA}.{table} WHERE {where}", params)
    return erased


def erase_duckdb(wh: Warehouse, matcher: Matcher, *, compact: bool) -> Erased:
    """Delete the rows; when any went (or `compact`), rewrite the file so their bytes go too."""
    if not wh.path.exists():
        return {}
    with wh.connect() as con:
        tables = _duckdb_tables(con)
        con.execute("BEGIN TRANSACTION")
        erased = _erase_rows(con, tables, matcher, "?")
        con.execute("COMMIT")
        if erased or compact:
            _rewrite_duckdb(con, wh.path)
    return erased


def _rewrite_duckdb(con: Any, path: Path) -> None:
    """Copy the database into a fresh file and put it in place of the old one (free blocks left behind)."""
    fresh = path.with_name(f".{path.name}.erasure.tmp")
    for leftover in (fresh, Path(f"{fresh}.wal")):
        leftover.unlink(missing_ok=True)
    current = con.execute("SELECT current_database()").fetchone()[0]
    con.execute(f"ATTACH '{fresh}' AS erasure_copy")
    con.execute(f'COPY FROM DATABASE "{current}" TO erasure_copy')
    con.execute("DETACH erasure_copy")
    con.close()
    os.replace(fresh, path)
    Path(f"{path}.wal").unlink(missing_ok=True)  # the closed database checkpointed: nothing left in it


def _postgres_tables(cursor: Any) -> dict[str, list[str]]:
    cursor.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = %s "
        "AND column_name IN ('contact_key', 'email', 'as_of_date') ORDER BY table_name, ordinal_position",
        [SCHEMA])
    tables: dict[str, list[str]] = {}
    for table, column in cursor.fetchall():
        tables.setdefault(table, []).append(column)
    return tables


def erase_postgres(wh: PostgresWarehouse, matcher: Matcher, *, compact: bool) -> Erased:
    with wh.connect() as con, con.cursor() as cur:
        tables = _postgres_tables(cur)
        erased = _erase_rows(cur, tables, matcher, "%s")
    touched = {t for t, _ in erased} if not compact else set(tables)
    # VACUUM cannot run inside a transaction, and `wh.connect()` always opens one (psycopg2 >= 2.9 starts a
    # transaction on `with connection`): a connection of its own, in autocommit, with the same DSN.
    with closing(psycopg2.connect(wh._dsn)) as con:
        con.autocommit = True
        with con.cursor() as cur:
            for table in sorted(touched):
                cur.execute(f"VACUUM FULL {SCHEMA}.{table}")
    return erased


def erase(wh: Warehouse | PostgresWarehouse, matcher: Matcher, *, compact: bool) -> Erased:
    if isinstance(wh, PostgresWarehouse):
        return erase_postgres(wh, matcher, compact=compact)
    return erase_duckdb(wh, matcher, compact=compact)


def remaining(wh: Warehouse | PostgresWarehouse, matcher: Matcher) -> Iterator[str]:
    """`table.column` where the request's values are still found (verification)."""
    if isinstance(wh, Warehouse) and not wh.path.exists():
        return
    tables = wh.query("SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = ? "
                      "AND column_name IN ('contact_key', 'email')", [SCHEMA])
    for table, column in tables.iter_rows():
        values = wh.query(f'SELECT DISTINCT "{column}" AS v FROM {SCHEMA}.{table}')["v"].to_list()
        if matcher.matching(values):
            yield f"{SCHEMA}.{table}.{column}"

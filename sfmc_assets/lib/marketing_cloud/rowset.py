"""Reading a data extension: field metadata, rowset paging, typed Polars pages.

Paging follows the rowset protocol: page 1 on `/key/{key}/rowset` pins the query under a
`requestToken`; pages 2..N are `/token/{requestToken}/rowset?$page=N` (the form `links.next` takes),
fetched concurrently with a bounded number in flight and yielded in page order. Pages are ordered by the
primary key so that offsets are stable.

Each page is decoded and typed in the pool's worker threads, where most of the work (Polars' JSON reader,
`typed_frame`) runs without the GIL, so pages convert in parallel with each other and with the caller's
writes (the decoding is described in `decode_page`).

Marketing Cloud does not promise a snapshot across pages, so rows inserted, deleted or moved during a
read shift the offsets. Every page reports the total `count`; a read is accepted only if every page saw
the same count and held exactly the rows that count implies. Otherwise `InconsistentReadError` is raised
and the caller reads again (`extract.py`), so rows are neither lost nor duplicated.
"""

import io
import math
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson
import polars as pl

from sfmc_assets.lib.marketing_cloud.catalog import fields_of, find
from sfmc_assets.lib.marketing_cloud.client import MalformedBodyError, MarketingCloudClient, json_object
from sfmc_assets.lib.marketing_cloud.errors import InconsistentReadError, SchemaDriftError
from sfmc_assets.lib.marketing_cloud.fields import FieldSpec
from sfmc_assets.lib.marketing_cloud.types import empty_frame, typed_frame

MAX_PAGE_SIZE = 2500


def discover_fields(client: MarketingCloudClient, external_key: str) -> tuple[FieldSpec, ...]:
    """The data extension's fields from Marketing Cloud's metadata, in ordinal order (`catalog.py`)."""
    return fields_of(client, find(client, external_key))


@dataclass(frozen=True)
class RawPage:
    """One rowset page as served: the envelope fields the read checks, and its rows as strings.

    `rows` has the served (lower-cased) column names, every column a String (a JSON null is a null);
    it is None when the page has no rows.
    """

    count: int
    page_size: int | None
    request_token: str | None
    has_next: bool
    n_rows: int
    rows: pl.DataFrame | None


def decode_page(content: bytes) -> RawPage:
    """Decode a rowset body; raise `MalformedBodyError` (retried by the client) if it is not a JSON object.

    Polars' JSON reader does the work and releases the GIL (the `orjson` + `pl.from_dicts` decoding it
    replaces held it for ~15 ms a page): `items[].keys` and `items[].values` become two struct columns,
    unnested side by side. That path takes pages whose values are all JSON strings or null, which is what
    the API sends (every value a string, `""` for NULL; whether a JSON null can occur is not documented). Anything else
    (a number, boolean or nested value, a key in both `keys` and `values` or twice in one object, a body
    Polars refuses) takes the `orjson` path, which gives the same strings for string values and renders
    the others with `_text`; only a body `orjson` cannot read either is malformed.
    """
    try:
        frame = pl.read_json(io.BytesIO(content), infer_schema_length=None)
        rows = _items_frame(frame)
    except Exception:  # _NotColumnar, invalid JSON (ComputeError), a key twice in an object (DuplicateError)
        return _decode_with_orjson(content)
    envelope = frame.drop("items", strict=False)
    return _raw_page(envelope.row(0, named=True) if envelope.width else {}, rows)


class _NotColumnar(Exception):
    """The body is valid JSON of a shape the columnar path does not cover."""


def _items_frame(frame: pl.DataFrame) -> pl.DataFrame | None:
    """`items` as a frame of strings with the served names, None if there are none."""
    if frame.height != 1:
        raise _NotColumnar("not one JSON object")
    if "items" not in frame.columns:
        return None
    items = frame.get_column("items")
    if items.dtype == pl.Null:
        return None
    if isinstance(items.dtype, pl.List) and items.dtype.inner == pl.Null and not items.list.len()[0]:
        return None  # "items": []
    if not (isinstance(items.dtype, pl.List) and isinstance(items.dtype.inner, pl.Struct)):
        raise _NotColumnar("items are not a list of objects")
    item_fields = {f.name: f.dtype for f in items.dtype.inner.fields}
    if set(item_fields) - {"keys", "values"}:
        raise _NotColumnar("items have members other than keys and values")
    exploded = items.explode()
    if exploded.null_count():
        raise _NotColumnar("an item is null")
    structs = exploded.struct.unnest()
    parts: list[pl.DataFrame] = []
    for name in ("keys", "values"):
        dtype = item_fields.get(name)
        if dtype is None or dtype == pl.Null:
            continue
        if not isinstance(dtype, pl.Struct):
            raise _NotColumnar(f"{name} are not objects")
        if not dtype.fields:
            continue  # `"keys": {}`: a data extension without a primary key
        part = structs.get_column(name).struct.unnest()
        if any(d != pl.String and d != pl.Null for d in part.dtypes):
            # Polars would write 1 as "1.0" in a column that also holds 1.5.
            raise _NotColumnar("values that are not strings")
        parts.append(part)
    if not parts:
        return pl.DataFrame(height=len(exploded)) if len(exploded) else None
    if len(parts) == 2 and set(parts[0].columns) & set(parts[1].columns):
        raise _NotColumnar("a column in both keys and values")  # the orjson path keeps the value's
    rows = pl.concat(parts, how="horizontal") if len(parts) == 2 else parts[0]
    return rows.cast(pl.String) if any(d == pl.Null for d in rows.dtypes) else rows


def _decode_with_orjson(content: bytes) -> RawPage:
    body = json_object(content)
    items = body.get("items") or []
    if not isinstance(items, list) or not all(isinstance(it, dict) for it in items):
        raise MalformedBodyError("are not a rowset page (items are not objects)")
    if not items:
        return _raw_page(body, None)
    dicts = [{name: value if type(value) is str else _text(value)
              for part in (it.get("keys") or {}, it.get("values") or {}) for name, value in part.items()}
             for it in items]
    names = dict.fromkeys(name for row in dicts for name in row)
    rows = pl.from_dicts(dicts, schema={name: pl.String for name in names}) if names \
        else pl.DataFrame(height=len(dicts))
    return _raw_page(body, rows)


def _text(value: Any) -> str | None:
    """A non-string value as text: null stays null (blank), `true`/`false` and numbers as
    `pl.from_dicts(..., schema=String)` wrote them, nested values as JSON (they fail typing, named)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return orjson.dumps(value).decode()


def _raw_page(head: Mapping[str, Any], rows: pl.DataFrame | None) -> RawPage:
    links = head.get("links")
    token = head.get("requestToken")
    return RawPage(
        count=int(head.get("count") or 0),
        page_size=int(head.get("pageSize") or 0) or None,
        request_token=str(token) if token else None,
        has_next=bool(links.get("next")) if isinstance(links, Mapping) else False,
        n_rows=0 if rows is None else rows.height,
        rows=rows,
    )


@dataclass
class RowsetStats:
    """What one read saw, for metadata and reconciliation."""

    count: int = 0
    pages: int = 0
    rows: int = 0
    request_token: str | None = None
    counts_seen: set[int] = field(default_factory=set)


class RowsetReader:
    """Iterate a data extension's rows matching a filter as typed Polars pages."""

    def __init__(
        self,
        client: MarketingCloudClient,
        external_key: str,
        fields: Sequence[FieldSpec],
        *,
        filter: str | None = None,
        order_by: str | None = None,
        select: Sequence[str] | None = None,
        page_size: int = MAX_PAGE_SIZE,
        concurrency: int = 4,
        utc_offset_hours: float = -6.0,
    ) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be within 1..{MAX_PAGE_SIZE}, got {page_size}")
        self.client = client
        self.key = external_key
        self.fields = tuple(fields)
        self.filter = filter
        self.order_by = order_by or ",".join(f"{f.name} asc" for f in self.fields if f.is_primary_key) or None
        self.select = list(select) if select else None  # `$fields`: read only these columns
        self.page_size = page_size
        self.concurrency = max(1, concurrency)
        self.utc_offset_hours = utc_offset_hours
        self.stats = RowsetStats()
        self._by_lower = {f.name.lower(): f.name for f in self.fields}

    def _first_page(self) -> RawPage:
        params: dict[str, Any] = {"$page": 1, "$pageSize": self.page_size}
        if self.filter:
            params["$filter"] = self.filter
        if self.order_by:
            params["$orderBy"] = self.order_by
        if self.select:
            params["$fields"] = ",".join(self.select)
        return self.client.get_parsed(f"data/v1/customobjectdata/key/{self.key}/rowset", params, decode_page,
                                      data_extension=self.key)

    def _page(self, token: str, page_no: int, n_pages: int, count: int,
              page_size: int) -> tuple[RawPage, pl.DataFrame | None]:
        """Fetch, decode and type page `page_no` (in a worker thread)."""
        raw = self.client.get_parsed(f"data/v1/customobjectdata/token/{token}/rowset", {"$page": page_no},
                                     decode_page, data_extension=self.key)
        return raw, self._typed(raw, page_no, n_pages, count, page_size)

    def pages(self) -> Iterator[pl.DataFrame]:
        """Typed pages in page order. Raises `InconsistentReadError` when the data moved under the read."""
        first = self._first_page()
        count = first.count
        page_size = first.page_size or self.page_size
        self.stats = RowsetStats(count=count, request_token=first.request_token, counts_seen={count})
        n_pages = max(1, math.ceil(count / page_size))
        yield self._accept(first, self._typed(first, 1, n_pages, count, page_size), 1, n_pages, count, page_size)
        if n_pages == 1:
            return
        token = first.request_token
        if not token:
            raise InconsistentReadError("first page has more pages but no requestToken",
                                        data_extension=self.key)
        # `concurrency` threads, so at most that many requests in flight; twice as many pages queued, so
        # the threads keep fetching while the caller is busy with earlier pages (a Parquet write).
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix=f"rowset-{self.key}")
        pending: deque[tuple[int, Future[tuple[RawPage, pl.DataFrame | None]]]] = deque()
        next_page = 2
        try:
            while pending or next_page <= n_pages:
                while next_page <= n_pages and len(pending) < 2 * self.concurrency:
                    pending.append((next_page, pool.submit(self._page, token, next_page, n_pages, count,
                                                           page_size)))
                    next_page += 1
                page_no, future = pending.popleft()
                raw, typed = future.result()
                yield self._accept(raw, typed, page_no, n_pages, count, page_size)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _consistent(self, raw: RawPage, page_no: int, n_pages: int, count: int, page_size: int) -> bool:
        return (raw.count == count and raw.n_rows == self._expected_rows(page_no, n_pages, count, page_size)
                and raw.has_next == (page_no < n_pages))

    @staticmethod
    def _expected_rows(page_no: int, n_pages: int, count: int, page_size: int) -> int:
        return 0 if count == 0 else (page_size if page_no < n_pages else count - page_size * (n_pages - 1))

    def _typed(self, raw: RawPage, page_no: int, n_pages: int, count: int, page_size: int) -> pl.DataFrame | None:
        """The typed page, or None if the page is inconsistent (`_accept` raises for it, in page order)."""
        if not self._consistent(raw, page_no, n_pages, count, page_size):
            return None
        if raw.rows is None or raw.n_rows == 0:
            return empty_frame(self.fields)
        return typed_frame(self._strings(raw.rows, page_no), self.fields, self.utc_offset_hours)

    def _accept(self, raw: RawPage, typed: pl.DataFrame | None, page_no: int, n_pages: int, count: int,
                page_size: int) -> pl.DataFrame:
        """Record the page in the stats (in the consuming thread) and raise if it is inconsistent."""
        self.stats.counts_seen.add(raw.count)
        if typed is None:
            expected = self._expected_rows(page_no, n_pages, count, page_size)
            raise InconsistentReadError(
                f"rows changed during the read: page {page_no}/{n_pages} reported count {raw.count} "
                f"(first page: {count}) with {raw.n_rows} row(s) (expected {expected})",
                data_extension=self.key, request=f"GET rowset page {page_no}",
            )
        self.stats.pages += 1
        self.stats.rows += raw.n_rows
        return typed

    def _strings(self, rows: pl.DataFrame, page_no: int) -> pl.DataFrame:
        """The page's strings with the configured column names (the API lower-cases them)."""
        served = {name.lower() for name in rows.columns}
        expected = set(self._by_lower)
        if served != expected or len(served) != rows.width:
            added = sorted(served - expected)
            removed = sorted(self._by_lower[n] for n in expected - served)
            raise SchemaDriftError(
                "the rows served do not have the expected columns: "
                + "; ".join(p for p in (f"added {added}" if added else "",
                                        f"removed {removed}" if removed else "",
                                        "" if added or removed else f"served twice in different case: "
                                        f"{sorted(rows.columns)}") if p),
                data_extension=self.key, request=f"GET rowset page {page_no}",
            )
        return rows.rename({c: self._by_lower[c.lower()] for c in rows.columns})

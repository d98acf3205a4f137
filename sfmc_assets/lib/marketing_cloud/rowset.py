"""Reading a data extension: field metadata, rowset paging, typed Polars pages.

Paging follows the protocol (reference §2): page 1 on `/key/{key}/rowset` pins the query under a
`requestToken`; pages 2..N are `/token/{requestToken}/rowset?$page=N` (the form `links.next` takes),
fetched concurrently with a bounded number in flight and yielded in page order. Pages are ordered by the
primary key so that offsets are stable.

Marketing Cloud does not promise a snapshot across pages, so rows inserted, deleted or moved during a
read shift the offsets. Every page reports the total `count`; a read is accepted only if every page saw
the same count and held exactly the rows that count implies. Otherwise `InconsistentReadError` is raised
and the caller reads again (`extract.py`), so rows are neither lost nor duplicated.
"""

import math
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from sfmc_assets.lib.config import FieldSpec
from sfmc_assets.lib.marketing_cloud.client import MarketingCloudClient
from sfmc_assets.lib.marketing_cloud.errors import (
    DataExtensionNotFoundError,
    InconsistentReadError,
    SchemaDriftError,
)
from sfmc_assets.lib.marketing_cloud.types import empty_frame, typed_frame

MAX_PAGE_SIZE = 2500


def discover_fields(client: MarketingCloudClient, external_key: str) -> tuple[FieldSpec, ...]:
    """The data extension's fields from Marketing Cloud's metadata, in ordinal order.

    `$search` matches names, keys and descriptions, 25 per page; the exact key is picked from the results.
    """
    page = 1
    while True:
        body = client.get_json("data/v1/customobjects", {"$search": external_key, "$page": page},
                               data_extension=external_key)
        items = body.get("items") or []
        match = next((i for i in items if str(i.get("key", "")).lower() == external_key.lower()), None)
        if match is not None:
            break
        page_size = int(body.get("pageSize") or 25)
        if not items or page * page_size >= int(body.get("count") or 0) or page >= 40:
            raise DataExtensionNotFoundError(
                f"no data extension with external key {external_key!r} (customobjects search found "
                f"{body.get('count', 0)} candidate(s), none with that key)",
                data_extension=external_key, request=f"GET data/v1/customobjects?$search={external_key}",
            )
        page += 1
    fields_body = client.get_json(f"data/v1/customobjects/{match['id']}/fields", data_extension=external_key)
    raw = sorted(fields_body.get("fields") or [], key=lambda f: int(f.get("ordinal") or 0))
    return tuple(
        FieldSpec(
            name=str(f["name"]),
            type=f["type"],
            length=f.get("length"),
            scale=f.get("scale"),
            is_primary_key=bool(f.get("isPrimaryKey")),
            is_nullable=bool(f.get("isNullable", True)),
        )
        for f in raw
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
        self.page_size = page_size
        self.concurrency = max(1, concurrency)
        self.utc_offset_hours = utc_offset_hours
        self.stats = RowsetStats()
        self._by_lower = {f.name.lower(): f.name for f in self.fields}

    def _first_page(self) -> dict[str, Any]:
        params: dict[str, Any] = {"$page": 1, "$pageSize": self.page_size}
        if self.filter:
            params["$filter"] = self.filter
        if self.order_by:
            params["$orderBy"] = self.order_by
        return self.client.get_json(f"data/v1/customobjectdata/key/{self.key}/rowset", params,
                                    data_extension=self.key)

    def _page(self, token: str, page: int) -> dict[str, Any]:
        return self.client.get_json(f"data/v1/customobjectdata/token/{token}/rowset", {"$page": page},
                                    data_extension=self.key)

    def pages(self) -> Iterator[pl.DataFrame]:
        """Typed pages in page order. Raises `InconsistentReadError` when the data moved under the read."""
        first = self._first_page()
        count = int(first.get("count") or 0)
        page_size = int(first.get("pageSize") or self.page_size)
        self.stats = RowsetStats(count=count, request_token=first.get("requestToken"), counts_seen={count})
        n_pages = max(1, math.ceil(count / page_size))
        yield self._convert(first, 1, n_pages, count, page_size)
        if n_pages == 1:
            return
        token = first.get("requestToken")
        if not token:
            raise InconsistentReadError("first page has more pages but no requestToken",
                                        data_extension=self.key)
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix=f"rowset-{self.key}")
        pending: deque[tuple[int, Future[dict[str, Any]]]] = deque()
        next_page = 2
        try:
            while pending or next_page <= n_pages:
                while next_page <= n_pages and len(pending) < self.concurrency:
                    pending.append((next_page, pool.submit(self._page, token, next_page)))
                    next_page += 1
                page_no, future = pending.popleft()
                yield self._convert(future.result(), page_no, n_pages, count, page_size)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _convert(self, body: dict[str, Any], page_no: int, n_pages: int, count: int,
                 page_size: int) -> pl.DataFrame:
        seen = int(body.get("count") or 0)
        self.stats.counts_seen.add(seen)
        items = body.get("items") or []
        expected = 0 if count == 0 else (page_size if page_no < n_pages else count - page_size * (n_pages - 1))
        has_next = bool((body.get("links") or {}).get("next"))
        if seen != count or len(items) != expected or has_next != (page_no < n_pages):
            raise InconsistentReadError(
                f"rows changed during the read: page {page_no}/{n_pages} reported count {seen} "
                f"(first page: {count}) with {len(items)} row(s) (expected {expected})",
                data_extension=self.key, request=f"GET rowset page {page_no}",
            )
        self.stats.pages += 1
        self.stats.rows += len(items)
        if not items:
            return empty_frame(self.fields)
        return typed_frame(self._strings(items, page_no), self.fields, self.utc_offset_hours)

    def _strings(self, items: list[dict[str, Any]], page_no: int) -> pl.DataFrame:
        """The page as a frame of strings, with the configured column names (the API lower-cases them)."""
        rows = [{**(it.get("keys") or {}), **(it.get("values") or {})} for it in items]
        served = {name.lower() for name in rows[0]}
        expected = set(self._by_lower)
        if served != expected:
            added = sorted(served - expected)
            removed = sorted(self._by_lower[n] for n in expected - served)
            raise SchemaDriftError(
                "the rows served do not have the expected columns: "
                + "; ".join(p for p in (f"added {added}" if added else "",
                                        f"removed {removed}" if removed else "") if p),
                data_extension=self.key, request=f"GET rowset page {page_no}",
            )
        frame = pl.from_dicts(rows, schema={name: pl.String for name in rows[0]})
        return frame.rename({c: self._by_lower[c.lower()] for c in frame.columns})

"""The account's data extensions as Marketing Cloud's REST metadata describes them: search, fields, first rows.

Marketing Cloud's REST API has no "list every data extension" call: `GET /data/v1/customobjects` needs
`$search` (a request without it is refused with 400), matches the term against names, keys and
descriptions, and serves 25 results a page whatever `$pageSize` says, with the total in `count` and the
next page in `links.next`. Listing means searching and reading every page. An empty term is what matches
everything in the local sandbox; whether a real tenant accepts it is not documented, so callers let the
user pass a term (a 400 is reported with that advice).

Field metadata comes from `/data/v1/customobjects/{id}/fields`, by the data extension's GUID id (not its
key), which the search result carries.
"""

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sfmc_assets.lib.marketing_cloud.client import MarketingCloudClient
from sfmc_assets.lib.marketing_cloud.errors import DataExtensionNotFoundError, MarketingCloudError
from sfmc_assets.lib.marketing_cloud.fields import FieldSpec

SEARCH_PATH = "data/v1/customobjects"
#: Marketing Cloud serves 25 search results a page and ignores `$pageSize`.
SEARCH_PAGE_SIZE = 25
#: A bound on the pages one search may read (25,000 data extensions), so a server that never stops
#: announcing more pages cannot keep a listing going forever.
MAX_SEARCH_PAGES = 1000


@dataclass(frozen=True)
class DataExtensionSummary:
    """One search result: what identifies a data extension and what the listing shows about it."""

    id: str
    key: str
    name: str
    description: str = ""
    row_count: int | None = None
    sendable: bool | None = None

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> "DataExtensionSummary":
        count = item.get("rowCount")
        sendable = item.get("isSendable")
        return cls(id=str(item["id"]), key=str(item.get("key") or ""), name=str(item.get("name") or ""),
                   description=str(item.get("description") or ""),
                   row_count=int(count) if count is not None else None,
                   sendable=bool(sendable) if sendable is not None else None)


def _search_pages(client: MarketingCloudClient, term: str, *, context: str | None) -> Iterator[dict[str, Any]]:
    """Every page of one search, in order (`count` and `pageSize` of the first page say how many)."""
    first = client.get_json(SEARCH_PATH, {"$search": term, "$page": 1}, data_extension=context)
    yield first
    page_size = int(first.get("pageSize") or SEARCH_PAGE_SIZE)
    pages = math.ceil(int(first.get("count") or 0) / max(1, page_size))
    if pages > MAX_SEARCH_PAGES:
        raise MarketingCloudError(f"the search for {term!r} announces {pages} pages, more than the "
                                  f"{MAX_SEARCH_PAGES} read at most: narrow it", request=f"GET {SEARCH_PATH}")
    for page in range(2, pages + 1):
        body = client.get_json(SEARCH_PATH, {"$search": term, "$page": page}, data_extension=context)
        if not body.get("items"):
            return  # fewer results than announced (data extensions deleted meanwhile)
        yield body


def search(client: MarketingCloudClient, term: str = "") -> list[DataExtensionSummary]:
    """Every data extension whose name, key or description matches `term`, over all result pages.

    A data extension created or deleted during the listing can shift the pages; results are kept once
    per id, in the order served.
    """
    found: dict[str, DataExtensionSummary] = {}
    for body in _search_pages(client, term, context=None):
        for item in body.get("items") or []:
            if item.get("id") is not None:
                found.setdefault(str(item["id"]), DataExtensionSummary.from_item(item))
    return list(found.values())


def find(client: MarketingCloudClient, external_key: str) -> DataExtensionSummary:
    """The data extension with this external key (case-insensitive), searched by its key."""
    candidates = 0
    for body in _search_pages(client, external_key, context=external_key):
        items = body.get("items") or []
        candidates = int(body.get("count") or 0)
        match = next((i for i in items if str(i.get("key", "")).lower() == external_key.lower()), None)
        if match is not None:
            return DataExtensionSummary.from_item(match)
    raise DataExtensionNotFoundError(
        f"no data extension with external key {external_key!r} (customobjects search found {candidates} "
        "candidate(s), none with that key)",
        data_extension=external_key, request=f"GET {SEARCH_PATH}?$search={external_key}",
    )


def fields_of(client: MarketingCloudClient, summary: DataExtensionSummary) -> tuple[FieldSpec, ...]:
    """The data extension's fields in ordinal order, as its metadata describes them."""
    body = client.get_json(f"{SEARCH_PATH}/{summary.id}/fields", data_extension=summary.key or None)
    raw = sorted(body.get("fields") or [], key=lambda f: int(f.get("ordinal") or 0))
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


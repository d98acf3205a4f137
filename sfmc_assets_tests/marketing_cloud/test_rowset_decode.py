"""Decoding rowset pages with Polars (`decode_page`) and typing them in the reader, offline.

The columnar path must give exactly the strings `orjson` reads from the same body, for any text a value
can hold (escapes, non-ASCII, control characters, `""`), and fall back to `orjson` for the shapes it
does not cover; a body neither can read is malformed (the client retries it).
"""

import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfmc_assets.lib.marketing_cloud.client import MalformedBodyError
from sfmc_assets.lib.marketing_cloud.errors import InconsistentReadError, SchemaDriftError
from sfmc_assets.lib.marketing_cloud.fields import FieldSpec
from sfmc_assets.lib.marketing_cloud.rowset import (
    RowsetReader,
    _decode_with_orjson,
    _items_frame,
    decode_page,
)
from sfmc_assets.lib.marketing_cloud.types import PARSE_ERRORS

FIELDS = (
    FieldSpec(name="Key", type="Text", is_primary_key=True, is_nullable=False),
    FieldSpec(name="Orders", type="Number"),
    FieldSpec(name="OptIn", type="Boolean"),
    FieldSpec(name="When", type="Date"),
)
TOKEN = "3934bf37-a0a4-4312-94ba-b4b071079146"


def body(items: Sequence[Mapping[str, Any]] | None, *, count: int, page: int = 1, page_size: int = 2500,
         more: bool = False) -> dict[str, Any]:
    """A rowset page shaped like the ones public clients capture from the real route."""
    links = {"self": f"/v1/customobjectdata/token/{TOKEN}/rowset?$page={page}"}
    if more:
        links["next"] = f"/v1/customobjectdata/token/{TOKEN}/rowset?$page={page + 1}"
    out: dict[str, Any] = {"links": links, "requestToken": TOKEN, "tokenExpireDateUtc": "2021-07-11T20:11:29.59",
                           "customObjectId": "8a16c900-bbe1-eb11-b826-48df37dc1641", "customObjectKey": "DE",
                           "pageSize": page_size, "page": page, "count": count, "top": 0}
    if items is not None:
        out["items"] = list(items)
    return out


def item(key: str, **values: Any) -> dict[str, Any]:
    return {"keys": {"key": key}, "values": values}


def rows_of(content: bytes) -> list[dict[str, Any]]:
    page = decode_page(content)
    return [] if page.rows is None else page.rows.to_dicts()


# --- the columnar path reads what orjson reads ------------------------------------------------------

text = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(
    ["", " ", '"', "\\", "\\u00e9", "\n\t\r", "\x00", "\u2028", "😀", "é", "True", " 6/23/2024 12:00:00 AM "])
value = st.none() | text


@st.composite
def pages(draw: st.DrawFn) -> list[dict[str, Any]]:
    columns = draw(st.lists(st.text("abcdefghij", min_size=1, max_size=6), min_size=1, max_size=5, unique=True))
    n = draw(st.integers(min_value=1, max_value=6))
    return [{"keys": {"id": draw(text)}, "values": {c: draw(value) for c in columns if c != "id"}} for _ in range(n)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=pages(), encoding=st.sampled_from(["orjson", "ascii", "indented"]))
def test_any_string_values_decode_exactly_as_orjson_reads_them(items: list[dict[str, Any]], encoding: str) -> None:
    page = body(items, count=len(items))
    content = {"orjson": lambda: orjson.dumps(page),
               "ascii": lambda: json.dumps(page, ensure_ascii=True).encode(),  # \uXXXX escapes, surrogate pairs
               "indented": lambda: json.dumps(page, indent=2, ensure_ascii=False).encode()}[encoding]()
    expected = [{**it["keys"], **it["values"]} for it in items]
    got = decode_page(content)
    assert got.rows is not None and got.rows.to_dicts() == expected
    assert got.rows.dtypes == [pl.String] * got.rows.width
    assert got.rows.to_dicts() == _decode_with_orjson(content).rows.to_dicts()  # type: ignore[union-attr]
    columnar = _items_frame(pl.read_json(io.BytesIO(content)))  # the path taken, not the fallback
    assert columnar is not None and columnar.to_dicts() == expected


def test_envelope_fields_are_read() -> None:
    page = decode_page(orjson.dumps(body([item("a", n="1")], count=5, page=2, page_size=1, more=True)))
    assert (page.count, page.page_size, page.request_token, page.has_next, page.n_rows) == (5, 1, TOKEN, True, 1)
    last = decode_page(orjson.dumps(body([item("e", n="1")], count=5, page=5, page_size=1)))
    assert last.has_next is False


def test_an_empty_data_extension_has_no_items_key() -> None:
    """A page with count 0 comes without `items` at all."""
    page = decode_page(orjson.dumps(body(None, count=0)))
    assert (page.count, page.n_rows, page.rows) == (0, 0, None)
    assert decode_page(orjson.dumps(body([], count=0))).rows is None


def test_a_data_extension_without_primary_key_has_empty_keys() -> None:
    content = orjson.dumps(body([{"keys": {}, "values": {"email": "a@b.c", "n": ""}}], count=1))
    assert rows_of(content) == [{"email": "a@b.c", "n": ""}]


def test_values_that_are_not_strings_are_text_and_null_is_blank() -> None:
    """The reference says every value is a JSON string; numbers, booleans and null are read anyway, the same
    way in a column of mixed kinds (Polars alone would write 1 as "1.0" next to 1.5)."""
    content = orjson.dumps(body([item("a", n=1, f=1.5, b=True, z=None, s="x", o={"a": 1}),
                                 item("b", n=1.5, f=2, b="False", z=None, s=7, o=[1, "2"])], count=2))
    assert rows_of(content) == [
        {"key": "a", "n": "1", "f": "1.5", "b": "true", "z": None, "s": "x", "o": '{"a":1}'},
        {"key": "b", "n": "1.5", "f": "2", "b": "False", "z": None, "s": "7", "o": '[1,"2"]'},
    ]


def test_a_column_in_keys_and_values_or_twice_in_an_object_keeps_the_last() -> None:
    """As a dict merge (and orjson) would: values after keys, the last duplicate wins."""
    both = orjson.dumps(body([{"keys": {"id": "k"}, "values": {"id": "v", "n": "1"}}], count=1))
    assert rows_of(both) == [{"id": "v", "n": "1"}]
    twice = b'{"count":1,"items":[{"keys":{"id":"a"},"values":{"n":"1","n":"2"}}]}'
    assert rows_of(twice) == [{"id": "a", "n": "2"}]


def test_items_missing_a_column_have_null_there() -> None:
    content = orjson.dumps(body([item("a", n="1", m="x"), item("b", n="2"), {"keys": {"key": "c"}}], count=3))
    assert rows_of(content) == [{"key": "a", "n": "1", "m": "x"}, {"key": "b", "n": "2", "m": None},
                                {"key": "c", "n": None, "m": None}]


# --- malformed bodies are errors the client retries -------------------------------------------------

GOOD = orjson.dumps(body([item("a", n="1", when="6/23/2024 12:00:00 AM"), item("b", n="", when="")], count=2))


def test_every_truncation_of_a_page_is_malformed() -> None:
    """Exhaustive: each of the page's proper prefixes (one test, not one per cut: the same coverage
    without 450 test items' set-up)."""
    accepted = []
    for cut in range(1, len(GOOD)):
        try:
            decode_page(GOOD[:cut])
        except MalformedBodyError:
            continue
        accepted.append(cut)
    assert accepted == [], f"truncated pages decoded without error at cuts {accepted}"
    assert decode_page(GOOD).count == 2


@pytest.mark.parametrize("content", [b"", b"null", b"[]", b'"x"', GOOD + b"garbage", GOOD + b"{}",
                                     b'{"count":1,"items":[null]}', b'{"count":1,"items":"x"}', b"\xff\xfe"])
def test_bodies_that_are_not_a_rowset_page_are_malformed(content: bytes) -> None:
    with pytest.raises(MalformedBodyError):
        decode_page(content)


# --- the reader: typing in worker threads, checks, drift --------------------------------------------


class PagesClient:
    """Serves canned page bodies by `$page` through the client's `get_parsed` contract."""

    def __init__(self, bodies: Mapping[int, bytes]) -> None:
        self.bodies = bodies
        self.requests: list[str] = []

    def get_parsed(self, path: str, params: Mapping[str, Any], parse: Any, *,
                   data_extension: str | None = None) -> Any:
        self.requests.append(f"{path}?$page={params['$page']}")
        return parse(self.bodies[int(params["$page"])])


def served(*pages_items: list[dict[str, Any]], count: int | None = None, page_size: int = 2) -> PagesClient:
    total = sum(len(p) for p in pages_items) if count is None else count
    return PagesClient({i: orjson.dumps(body(p, count=total, page=i, page_size=page_size, more=i < len(pages_items)))
                        for i, p in enumerate(pages_items, start=1)})


def row(key: str, orders: Any = "1", opt_in: Any = "True", when: Any = "6/23/2024 12:00:00 AM") -> dict[str, Any]:
    return {"keys": {"key": key}, "values": {"orders": orders, "optin": opt_in, "when": when}}


def read_all(client: PagesClient, **kw: Any) -> tuple[RowsetReader, pl.DataFrame]:
    reader = RowsetReader(client, "DE", FIELDS, concurrency=3, **kw)  # type: ignore[arg-type]
    return reader, pl.concat(list(reader.pages()))


def test_pages_are_typed_in_page_order_with_configured_names() -> None:
    client = served(*[[row(f"k{p}{i}", orders=str(p * 10 + i)) for i in range(2)] for p in range(1, 8)])
    reader, frame = read_all(client)
    assert frame.columns == ["Key", "Orders", "OptIn", "When", PARSE_ERRORS]
    assert frame["Key"].to_list() == [f"k{p}{i}" for p in range(1, 8) for i in range(2)]
    assert frame["Orders"].to_list() == [p * 10 + i for p in range(1, 8) for i in range(2)]
    assert (reader.stats.pages, reader.stats.rows, reader.stats.counts_seen) == (7, 14, {14})


def test_numbers_booleans_and_null_in_json_type_like_their_strings() -> None:
    client = served([row("a", orders=42, opt_in=True, when=None), row("b", orders=None, opt_in=False, when="")])
    _, frame = read_all(client)
    assert frame.select("Orders", "OptIn", "When", PARSE_ERRORS).rows() == [(42, True, None, None),
                                                                           (None, False, None, None)]


def test_parse_errors_are_named_per_row() -> None:
    _, frame = read_all(served([row("a", orders="4.5", opt_in="Yes"), row("b")]))
    assert frame[PARSE_ERRORS].to_list() == [
        "Orders: '4.5' is not a valid Number; OptIn: 'Yes' is not a valid Boolean", None]


def test_a_later_page_that_drifts_names_the_columns() -> None:
    drifted = [{"keys": {"key": "c"}, "values": {"orders": "1", "optin": "", "score": "3"}}] * 2
    with pytest.raises(SchemaDriftError) as info:
        read_all(served([row("a"), row("b")], drifted))
    message = str(info.value)
    assert "added ['score']" in message and "removed ['When']" in message
    assert "DE" in message and "page 2" in message


def test_a_column_served_twice_in_different_case_is_drift() -> None:
    twice = [{"keys": {"key": "a"}, "values": {"orders": "1", "Orders": "2", "optin": "", "when": ""}}]
    with pytest.raises(SchemaDriftError, match="served twice in different case"):
        read_all(served(twice))


def test_an_inconsistent_page_is_raised_in_page_order() -> None:
    client = served([row("a"), row("b")], [row("c")], [row("d"), row("e")], count=6)  # page 2 is short
    reader = RowsetReader(client, "DE", FIELDS, concurrency=3)  # type: ignore[arg-type]
    pages = reader.pages()
    assert next(pages).height == 2
    with pytest.raises(InconsistentReadError, match=r"page 2/3 reported count 6 \(first page: 6\) with 1 row"):
        next(pages)

"""`$filter` and `$orderBy` of the rowset API, parsed into parameterised DuckDB SQL.

Grammar (Salesforce publishes none for the rowset route, so this is the union of what public clients send):
    expr    := term ("or" term)*
    term    := factor ("and" factor)*
    factor  := "not" factor | "(" expr ")" | field op literal | field "between" literal "and" literal
    op      := eq | ne | neq | gt | gte | lt | lte
    literal := 'quoted text' (with '' for a quote) | number | true | false
Column names are case-insensitive. Date columns compare in server time: a literal without a zone is
server time (as SOAP documents for incoming dates; for REST this is UNCONFIRMED), a literal with `Z` or
an offset is converted. Literals are always bound as parameters, never interpolated.
"""

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)(?![\w.])|(?P<lp>\()|(?P<rp>\))|(?P<word>[A-Za-z_][\w.]*))"
)
_OPS = {"eq": "=", "ne": "<>", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_US_DATE = re.compile(r"^\s*(\d{1,2})/(\d{1,2})/(\d{4})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp][Mm]))?\s*$")


class FilterError(ValueError):
    """The filter or order cannot be parsed or names an unknown column (served as a 400)."""


@dataclass(frozen=True)
class Column:
    name: str  # as defined in the data extension
    sql: str  # quoted SQL identifier
    type: str  # SFMC field type


@dataclass(frozen=True)
class Token:
    kind: str
    text: str


def tokenize(text: str) -> list[Token]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise FilterError(f"cannot parse the filter near {text[pos:pos + 20]!r}")
        kind = m.lastgroup or ""
        tokens.append(Token(kind, m.group(kind)))
        pos = m.end()
    return tokens


def parse_server_datetime(value: str, utc_offset: dt.timedelta) -> dt.datetime:
    """A literal as naive server time: ISO with or without zone, or `M/d/yyyy h:mm:ss AM`."""
    m = _US_DATE.match(value)
    if m:
        month, day, year, hour, minute, second, ampm = m.groups()
        h = int(hour or 0) % 12 + (12 if (ampm or "").lower() == "pm" else 0)
        return dt.datetime(int(year), int(month), int(day), h, int(minute or 0), int(second or 0))
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise FilterError(f"{value!r} is not a date") from exc
    if parsed.tzinfo is None:
        return parsed
    return (parsed.astimezone(dt.timezone.utc) + utc_offset).replace(tzinfo=None)


class _Parser:
    def __init__(self, tokens: list[Token], resolve: Callable[[str], Column], utc_offset: dt.timedelta) -> None:
        self.tokens, self.pos, self.resolve, self.offset = tokens, 0, resolve, utc_offset
        self.params: list[object] = []

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise FilterError("the filter ends too early")
        self.pos += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok and tok.kind == "word" and tok.text.lower() == word:
            self.pos += 1
            return True
        return False

    def expr(self) -> str:
        parts = [self.term()]
        while self.keyword("or"):
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def term(self) -> str:
        parts = [self.factor()]
        while self.keyword("and"):
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def factor(self) -> str:
        if self.keyword("not"):
            return f"(NOT {self.factor()})"
        tok = self.take()
        if tok.kind == "lp":
            inner = self.expr()
            if self.take().kind != "rp":
                raise FilterError("unbalanced parenthesis in the filter")
            return f"({inner})"
        if tok.kind != "word":
            raise FilterError(f"expected a field name, found {tok.text!r}")
        column = self.resolve(tok.text)
        op_tok = self.take()
        op = op_tok.text.lower()
        if op == "between":
            low = self.literal(column)
            if not self.keyword("and"):
                raise FilterError("`between` needs `and`")
            high = self.literal(column)
            self.params += [low, high]
            return f"({column.sql} BETWEEN ? AND ?)"
        if op not in _OPS:
            raise FilterError(f"unknown operator {op_tok.text!r}")
        self.params.append(self.literal(column))
        return f"({column.sql} {_OPS[op]} ?)"

    def literal(self, column: Column) -> object:
        tok = self.take()
        if tok.kind == "str":
            raw = tok.text[1:-1].replace("''", "'")
        elif tok.kind == "num" or (tok.kind == "word" and tok.text.lower() in ("true", "false")):
            raw = tok.text
        else:
            raise FilterError(f"expected a value, found {tok.text!r}")
        return convert(raw, column, self.offset)


def convert(raw: str, column: Column, utc_offset: dt.timedelta) -> object:
    """A literal as the Python value of its column's type."""
    kind = column.type
    try:
        if kind == "Date":
            return parse_server_datetime(raw, utc_offset)
        if kind == "Number":
            return int(Decimal(raw))
        if kind == "Decimal":
            return Decimal(raw)
        if kind == "Boolean":
            lowered = raw.strip().lower()
            if lowered not in ("true", "false", "1", "0"):
                raise FilterError(f"{raw!r} is not a boolean")
            return lowered in ("true", "1")
    except (InvalidOperation, ValueError) as exc:
        raise FilterError(f"{raw!r} is not a valid {kind} for {column.name}") from exc
    return raw


def parse_filter(text: str, resolve: Callable[[str], Column], utc_offset: dt.timedelta) -> tuple[str, list[object]]:
    """`(sql_where, params)` for a `$filter` expression."""
    parser = _Parser(tokenize(text), resolve, utc_offset)
    sql = parser.expr()
    if parser.peek() is not None:
        raise FilterError(f"unexpected {parser.peek().text!r} in the filter")  # type: ignore[union-attr]
    return sql, parser.params


def parse_order(text: str, resolve: Callable[[str], Column]) -> str:
    """`Field [asc|desc], ...` as an SQL ORDER BY list."""
    items = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2:
            raise FilterError(f"cannot parse $orderBy item {part!r}")
        direction = words[1].upper() if len(words) == 2 else "ASC"
        if direction not in ("ASC", "DESC"):
            raise FilterError(f"unknown sort direction {words[1]!r}")
        items.append(f"{resolve(words[0]).sql} {direction}")
    return ", ".join(items)

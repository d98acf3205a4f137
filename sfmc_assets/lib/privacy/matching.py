"""Finding a contact's rows: by clear value when the request carries it, by keyed hash otherwise."""

from collections.abc import Iterable
from dataclasses import dataclass, field

import polars as pl

from sfmc_assets.lib.privacy.keys import KeyedHasher, normalise_all


@dataclass
class Matcher:
    """Matches the values of a request: contact keys, and the e-mail addresses found on their rows.

    The clear values are known only in the process that received the request (and are never written);
    a resumed request knows only their hashes, so values whose hash no clear value accounts for are
    matched by hashing the candidates (slower: one HMAC per distinct value).
    """

    hasher: KeyedHasher
    digests: set[str]
    clear: set[str] = field(default_factory=set)

    def add_clear(self, values: Iterable[object]) -> set[str]:
        """Remember clear values (normalised); returns their digests."""
        found = {v for v in normalise_all(pl.Series([str(v) for v in values if v is not None], dtype=pl.String))
                 .to_list() if v}
        self.clear |= found
        digests = {self.hasher.digest(v) for v in found}
        self.digests |= digests
        return digests

    @property
    def _unresolved(self) -> bool:
        return bool(self.digests - {self.hasher.digest(v) for v in self.clear})

    def matching(self, values: Iterable[object]) -> list[str]:
        """The distinct values (as written) that belong to the request."""
        distinct = pl.Series([str(v) for v in values if v is not None], dtype=pl.String).unique(maintain_order=True)
        known = normalise_all(distinct).is_in(sorted(self.clear))
        hits = distinct.filter(known).to_list()
        if self._unresolved:
            hits += self.hasher.matching(distinct.filter(~known).to_list(), self.digests)
        return hits

    def in_frame(self, frame: pl.LazyFrame, columns: list[str]) -> dict[str, list[str]]:
        """Column -> matching values, for the given columns of a (lazy) partition."""
        out: dict[str, list[str]] = {}
        for column in columns:
            values = frame.select(pl.col(column).cast(pl.String).unique()).collect().to_series().to_list()
            hits = self.matching(values)
            if hits:
                out[column] = hits
        return out


def drop_expr(hits: dict[str, list[str]]) -> pl.Expr:
    """True for the rows holding one of the matched values in its column."""
    expr = pl.lit(False)
    for column, values in hits.items():
        expr = expr | pl.col(column).cast(pl.String).is_in(values).fill_null(False)
    return expr

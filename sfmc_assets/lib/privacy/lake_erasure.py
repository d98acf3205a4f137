"""A contact's rows in the Parquet lake: found, collected, and removed partition by partition.

Every layer of every chain is searched (each data extension, and each tracking-event type, whose
partitions live under `sfmc/<layer>/events/<type>`): raw (source column names), clean, quarantine and
deletes (clean names), on the columns that say whose row it is (lib/personal.py `person_columns`). A
partition holding matching rows is rewritten without them through the lake's atomic writer, its footer
metadata kept (a raw partition's fields), so a reader sees the old file or the new one, never a mix.
Data extensions with neither a contact key nor an e-mail column cannot be searched that way: their text
columns are scanned for the request's values, and a hit is reported (the configuration must name the
column: `privacy.contact_key`) rather than silently left behind.
"""

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from sfmc_assets.lib.config import DataExtensionConfig, ProjectConfig
from sfmc_assets.lib.events import as_data_extension, configured
from sfmc_assets.lib.extract import fields_from_metadata
from sfmc_assets.lib.lake import STAGING_DIR, ParquetLake
from sfmc_assets.lib.marketing_cloud.fields import FieldSpec
from sfmc_assets.lib.personal import person_columns
from sfmc_assets.lib.privacy.matching import Matcher, drop_expr
from sfmc_assets.lib.privacy.store import PRIVACY_DIR

#: Lake folders of a data extension, and the asset each belongs to (for the UI's record of an erasure).
LAYERS = (("raw", "raw"), ("clean", "clean"), ("quarantine", "clean"), ("deletes", "deletes"))
#: A staged file older than this is an orphan of a killed write (a write commits within its step).
STAGING_GRACE = dt.timedelta(hours=6)
_ROWS_PER_BATCH = 250_000


class PartitionFile(Protocol):
    """A Parquet file of the lake, addressed as `ParquetLake` addresses partitions."""

    @property
    def key_path(self) -> list[str]: ...

    @property
    def partition(self) -> str: ...


@dataclass(frozen=True)
class DerivedFile:
    """A Parquet file outside the data extensions' layers (state other code derives: `segments/...`)."""

    folder: tuple[str, ...]
    partition: str

    @property
    def key_path(self) -> list[str]:
        return list(self.folder)

    def __str__(self) -> str:
        return "/".join([*self.folder, self.partition])


@dataclass(frozen=True)
class Chain:
    """A data extension, or a tracking-event type described as one: what its partitions hold, and the
    folder name under each layer (`("contacts",)`, `("events", "open")`)."""

    de: DataExtensionConfig
    name: tuple[str, ...]


def chains(config: ProjectConfig) -> list[Chain]:
    """Every chain of partitions the configuration writes."""
    out = [Chain(de, (de.name,)) for de in config.data_extensions]
    return out + [Chain(as_data_extension(e, config), ("events", e.name)) for e in configured(config)]


@dataclass(frozen=True)
class Location:
    """One partition file of one layer of one chain."""

    name: tuple[str, ...]
    layer: str
    partition: str

    @property
    def key_path(self) -> list[str]:
        return ["sfmc", self.layer, *self.name]

    @property
    def asset_path(self) -> list[str]:
        return ["sfmc", dict(LAYERS)[self.layer], *self.name]

    def __str__(self) -> str:
        return f"{'/'.join(self.key_path)}/{self.partition}"


def known_fields(store: ParquetLake, chain: Chain) -> tuple[FieldSpec, ...]:
    """The configured fields, else those the newest raw partition was read with."""
    if chain.de.fields is not None:
        return chain.de.fields
    raw = ["sfmc", "raw", *chain.name]
    for partition in reversed(store.partitions(raw)):
        found = fields_from_metadata(store.file_metadata(raw, partition))
        if found:
            return found
    return ()


#: Every layer folder, in the order they are searched.
ALL_LAYERS = tuple(layer for layer, _ in LAYERS)


def partitions(store: ParquetLake, chain: Chain, layers: tuple[str, ...] = ALL_LAYERS) -> Iterator[Location]:
    for layer in layers:
        for partition in store.partitions(["sfmc", layer, *chain.name]):
            yield Location(chain.name, layer, partition)


def find(store: ParquetLake, chain: Chain, matcher: Matcher,
         layers: tuple[str, ...] = ALL_LAYERS) -> Iterator[tuple[Location, dict[str, list[str]]]]:
    """The partitions (of `layers`) holding the request's values, with the matching values per column."""
    wanted = person_columns(chain.de, known_fields(store, chain))
    for loc in partitions(store, chain, layers):
        scan = store.scan(loc.key_path, loc.partition)
        names = scan.collect_schema().names()
        hits = matcher.in_frame(scan, [c for c in wanted if c in names])
        if hits:
            yield loc, hits


def count(store: ParquetLake, loc: PartitionFile, hits: dict[str, list[str]]) -> int:
    return store.scan(loc.key_path, loc.partition).filter(drop_expr(hits)).select(pl.len()).collect().item()


def rewrite_without(store: ParquetLake, loc: PartitionFile, hits: dict[str, list[str]]) -> int:
    """Replace the partition by itself minus the matching rows (atomically); returns the rows removed."""
    metadata = store.file_metadata(loc.key_path, loc.partition)
    scan = store.scan(loc.key_path, loc.partition)
    removed = scan.filter(drop_expr(hits)).select(pl.len()).collect().item()
    with store.writer(loc.key_path, loc.partition, scan.collect_schema()) as writer:
        writer.metadata.update(metadata)
        for batch in scan.filter(~drop_expr(hits)).collect_batches(chunk_size=_ROWS_PER_BATCH):
            writer.write(batch)
    return removed


def rows_of(store: ParquetLake, chain: Chain, matcher: Matcher, layer: str) -> pl.DataFrame | None:
    """Every row of one layer that belongs to the request (for collecting e-mails and identities)."""
    frames = [store.scan(loc.key_path, loc.partition).filter(drop_expr(hits))
              for loc, hits in find(store, chain, matcher, (layer,))]
    return pl.concat(frames, how="diagonal_relaxed").collect() if frames else None


#: Columns that name a person in derived files (the segment tables' names for them).
DERIVED_PERSON_COLUMNS = ("contact_key", "email")


def derived_files(store: ParquetLake, matcher: Matcher) -> Iterator[tuple[DerivedFile, dict[str, list[str]]]]:
    """Parquet files outside `sfmc/`, `_staging/` and `_privacy/` (state derived from the clean layer)
    whose `contact_key` or `email` column holds the request's values."""
    base = str(store.base).rstrip("/")
    for path in sorted(store.base.rglob("*.parquet"), key=str):
        parts = str(path)[len(base) + 1:].split("/")
        if parts[0] in ("sfmc", STAGING_DIR, PRIVACY_DIR) or path.name.startswith("."):
            continue
        loc = DerivedFile(tuple(parts[:-1]), parts[-1][: -len(".parquet")])
        scan = store.scan(loc.key_path, loc.partition)
        names = scan.collect_schema().names()
        hits = matcher.in_frame(scan, [c for c in DERIVED_PERSON_COLUMNS if c in names])
        if hits:
            yield loc, hits


def unkeyed_hits(store: ParquetLake, chain: Chain, matcher: Matcher) -> list[str]:
    """Partitions of a chain without person columns whose text columns hold the request's values."""
    found = []
    for loc in partitions(store, chain):
        scan = store.scan(loc.key_path, loc.partition)
        text = [c for c, t in scan.collect_schema().items() if t == pl.String]
        if matcher.in_frame(scan, text):
            found.append(str(loc))
    return found


def staged_files(store: ParquetLake, matcher: Matcher) -> tuple[list[str], list[str]]:
    """Staged files holding the request's values: (orphans deleted, younger ones left to their writer)."""
    folder = store.base.joinpath(STAGING_DIR)
    if not folder.exists():
        return [], []
    deleted, in_flight = [], []
    for path in folder.rglob("*.tmp"):
        try:
            with path.open("rb") as f:
                table = pq.read_table(f)
        except (OSError, pa.ArrowException):  # a file still being written is not a readable Parquet file yet
            continue
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        text = [c for c, t in frame.schema.items() if t == pl.String]
        if not matcher.in_frame(frame.lazy(), text):
            continue
        age = time.time() - path.stat().st_mtime
        if age > STAGING_GRACE.total_seconds():
            path.unlink()
            deleted.append(path.name)
        else:
            in_flight.append(path.name)
    return deleted, in_flight

"""The Parquet lake: one file per asset and daily partition, written in one place.

`<base>/<asset key path>/<partition>.parquet`. The base is any fsspec/UPath location (a local folder by
default, `s3://bucket/prefix` in production). Writes are all-or-nothing, so a run killed mid-write never
leaves a partition that looks complete, and rewriting a partition replaces it:

- the file is first written under `<base>/_staging/` (a temporary name, never a partition's name);
- local disk: it is then renamed onto the partition (atomic on one filesystem);
- object stores: a "rename" is a server-side copy then a delete. The copy is atomic (S3 CopyObject, GCS
  rewrite, Azure copy: the key shows the old object or the complete new one, never part of it), and the
  staged object itself only appears once its upload completed (a single PUT, or a multipart upload that is
  invisible until completed).

A process killed at any point therefore leaves, at worst, an orphan under `_staging/` (killed between the
upload and the copy) or an incomplete multipart upload (killed mid-upload): readers never look there, and
the rerun writes a fresh staged object. Expire both with a bucket lifecycle rule (docs/deploy.md).
Staging is never swept from here: a sweep could remove the file a concurrent writer is about to copy.
"""

import contextlib
import uuid
from collections.abc import Iterator, Sequence

import polars as pl
import pyarrow.parquet as pq
from upath import UPath

#: Where partition files are written before they take their name (relative to the lake's base).
STAGING_DIR = "_staging"

#: Object stores Polars reads natively (lazily, with predicate and projection push-down).
_POLARS_NATIVE = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "http", "https", "hf")


class PartitionWriter:
    """Appends typed pages to one partition file; nothing is visible under `target` until `commit()`.

    `tmp` is where the file is written first (`ParquetLake.partition_writer` puts it under the lake's
    staging folder); without it, a hidden name next to the target.
    """

    def __init__(self, target: UPath, schema: pl.Schema, tmp: UPath | None = None) -> None:
        self.target = target
        self.schema = schema
        #: Key-value metadata written into the file's footer at `commit()` (what the partition is).
        self.metadata: dict[str, str] = {}
        self.rows = 0
        self._tmp = tmp or target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        self._tmp.parent.mkdir(parents=True, exist_ok=True)
        self._sink = self._tmp.open("wb")
        self._writer: pq.ParquetWriter | None = None

    def write(self, frame: pl.DataFrame) -> None:
        table = frame.to_arrow()
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._sink, table.schema, compression="zstd")
        self._writer.write_table(table)
        self.rows += frame.height

    def commit(self) -> UPath:
        if self._writer is None:  # no page at all: still write an empty, typed partition
            self.write(pl.DataFrame(schema=self.schema))
        assert self._writer is not None
        if self.metadata:
            self._writer.add_key_value_metadata(self.metadata)
        self._writer.close()
        self._sink.close()  # local: flushed; object store: the staged object now exists, complete
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self._tmp.rename(self.target)  # local: rename(2); object store: atomic copy, then delete
        return self.target

    def abort(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        with contextlib.suppress(Exception):
            self._sink.close()
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()


class ParquetLake:
    """Partition files of every asset under one base location."""

    def __init__(self, base_uri: str) -> None:
        self.base = UPath(base_uri)

    def path(self, key: Sequence[str], partition: str) -> UPath:
        return self.base.joinpath(*key, f"{partition}.parquet")

    def exists(self, key: Sequence[str], partition: str) -> bool:
        return self.path(key, partition).exists()

    def partition_writer(self, key: Sequence[str], partition: str, schema: pl.Schema) -> PartitionWriter:
        """A writer for one partition, staged under `_staging/`; the caller commits or aborts it."""
        tmp = self.base.joinpath(STAGING_DIR, *key, f"{partition}.{uuid.uuid4().hex}.parquet.tmp")
        return PartitionWriter(self.path(key, partition), schema, tmp)

    @contextlib.contextmanager
    def writer(self, key: Sequence[str], partition: str, schema: pl.Schema) -> Iterator[PartitionWriter]:
        """Write a partition page by page; it replaces the old file only if the block completes."""
        w = self.partition_writer(key, partition, schema)
        try:
            yield w
        except BaseException:
            w.abort()
            raise
        w.commit()

    def write(self, frame: pl.DataFrame, key: Sequence[str], partition: str) -> UPath:
        with self.writer(key, partition, frame.schema) as w:
            w.write(frame)
        return w.target

    def read(self, key: Sequence[str], partition: str) -> pl.DataFrame:
        path = self.path(key, partition)
        if not path.exists():
            raise FileNotFoundError(
                f"partition {partition} of {'/'.join(key)} has not been materialised ({path})"
            )
        with path.open("rb") as f:
            return pl.read_parquet(f)

    def file_metadata(self, key: Sequence[str], partition: str) -> dict[str, str]:
        """The key-value metadata a partition file was committed with (`PartitionWriter.metadata`)."""
        with self.path(key, partition).open("rb") as f:
            raw = pq.read_metadata(f).metadata or {}
        return {k.decode(): v.decode() for k, v in raw.items() if not k.startswith(b"ARROW:")}

    def scan(self, key: Sequence[str], partition: str) -> pl.LazyFrame:
        """A lazy scan of one partition (reads only what the query needs)."""
        path = self.path(key, partition)
        if not path.exists():
            raise FileNotFoundError(
                f"partition {partition} of {'/'.join(key)} has not been materialised ({path})"
            )
        if path.protocol in ("", "file", "local"):
            return pl.scan_parquet(path.path)
        if path.protocol in _POLARS_NATIVE:
            return pl.scan_parquet(str(path), storage_options=dict(path.storage_options) or None)
        with path.open("rb") as f:  # any other fsspec filesystem: read through fsspec
            return pl.read_parquet(f).lazy()

    def scan_many(self, key: Sequence[str], partitions: Sequence[str]) -> pl.LazyFrame | None:
        """Lazy scan of the partitions that exist among `partitions` (None when none does)."""
        scans = [self.scan(key, p) for p in partitions if self.exists(key, p)]
        return pl.concat(scans, how="vertical_relaxed") if scans else None

    def partitions(self, key: Sequence[str]) -> list[str]:
        """The partitions of an asset that have a file, in order."""
        folder = self.base.joinpath(*key)
        if not folder.exists():
            return []
        return sorted(p.name[: -len(".parquet")] for p in folder.iterdir()
                      if p.name.endswith(".parquet") and not p.name.startswith("."))

    def version(self, key: Sequence[str], partition: str) -> str | None:
        """The version (see `versions`) of one partition; None when it does not exist."""
        path = self.path(key, partition)
        try:
            return _version(path.fs.info(path.path))
        except FileNotFoundError:
            return None

    def versions(self, key: Sequence[str]) -> dict[str, str]:
        """Every partition of `key` with a version that changes whenever its file is replaced.

        One listing call (not one per file). The version is the object store's ETag where there is one
        (it changes with the content), else size, modification time and inode: a rewrite goes through a
        new temporary file, so a replaced partition never keeps its inode.
        """
        folder = self.base.joinpath(*key)
        try:
            entries = folder.fs.ls(folder.path, detail=True)
        except FileNotFoundError:
            return {}
        found: dict[str, str] = {}
        for entry in entries:
            name = str(entry["name"]).rstrip("/").rsplit("/", 1)[-1]
            if entry.get("type") != "file" or not name.endswith(".parquet") or name.startswith("."):
                continue
            found[name.removesuffix(".parquet")] = _version(entry)
        return found

    def delete(self, key: Sequence[str], partition: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(key, partition).unlink()


def _version(info: dict) -> str:
    tag = info.get("ETag") or info.get("etag") or info.get("md5Hash")
    if tag:
        return str(tag)
    return f"{info.get('size')}:{info.get('mtime') or info.get('LastModified') or info.get('updated')}:{info.get('ino', '')}"

"""The Parquet lake on local disk and on an fsspec memory filesystem: atomic partitions, listing, metadata."""

from pathlib import Path

import polars as pl
import pytest

from sfmc_assets.lib.lake import ParquetLake

KEY = ["sfmc", "raw", "orders"]
FRAME = pl.DataFrame({"id": ["a", "b"], "n": [1, 2]})


@pytest.fixture(params=["local", "memory"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> ParquetLake:
    return ParquetLake(str(tmp_path / "lake") if request.param == "local" else f"memory://{tmp_path.name}/lake")


def test_a_partition_appears_only_when_committed(lake: ParquetLake) -> None:
    with lake.writer(KEY, "2026-10-03", FRAME.schema) as writer:
        writer.write(FRAME.head(1))
        assert not lake.exists(KEY, "2026-10-03")
        writer.write(FRAME.tail(1))
        writer.metadata["what"] = "two rows"
    assert lake.read(KEY, "2026-10-03").equals(FRAME)
    assert lake.file_metadata(KEY, "2026-10-03")["what"] == "two rows"


def test_a_failed_write_leaves_the_previous_partition(lake: ParquetLake) -> None:
    lake.write(FRAME, KEY, "2026-10-03")
    with pytest.raises(RuntimeError), lake.writer(KEY, "2026-10-03", FRAME.schema) as writer:
        writer.write(FRAME.with_columns(pl.col("n") * 10))
        raise RuntimeError("the read failed half-way")
    assert lake.read(KEY, "2026-10-03").equals(FRAME)
    assert lake.partitions(KEY) == ["2026-10-03"]  # no temporary file listed


def test_an_empty_partition_is_written_typed(lake: ParquetLake) -> None:
    with lake.writer(KEY, "2026-10-04", FRAME.schema):
        pass
    assert lake.read(KEY, "2026-10-04").schema == FRAME.schema


def test_listing_scanning_and_deleting(lake: ParquetLake) -> None:
    assert lake.partitions(KEY) == [] and lake.scan_many(KEY, ["2026-10-01"]) is None
    for day in ("2026-10-02", "2026-10-01", "2026-10-03"):
        lake.write(FRAME, KEY, day)
    assert lake.partitions(KEY) == ["2026-10-01", "2026-10-02", "2026-10-03"]
    many = lake.scan_many(KEY, ["2026-10-01", "2026-10-09", "2026-10-03"])
    assert many is not None and many.collect().height == 4
    lake.delete(KEY, "2026-10-02")
    lake.delete(KEY, "2026-10-02")  # idempotent
    assert lake.partitions(KEY) == ["2026-10-01", "2026-10-03"]


def test_a_missing_partition_is_named(lake: ParquetLake) -> None:
    with pytest.raises(FileNotFoundError, match="partition 2026-10-09 of sfmc/raw/orders has not been materialised"):
        lake.scan(KEY, "2026-10-09")

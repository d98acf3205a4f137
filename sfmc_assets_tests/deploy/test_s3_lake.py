"""The lake on a real S3 API (moto's server on loopback): partitions appear only when complete.

A process killed at the worst points of a write (the staged object complete but not yet copied onto the
partition's name; a multipart upload half sent) leaves no partition visible; the orphan it leaves never
reaches a reader and does not stop the rerun from writing the partition exactly.
"""

import os
import subprocess
import sys

import polars as pl
import pytest

from sfmc_assets.lib.lake import STAGING_DIR, ParquetLake
from sfmc_assets_tests.deploy.conftest import S3
from sfmc_assets_tests.deploy.killed_writer import KEY, PARTITION

pytestmark = pytest.mark.timeout(300)


def _kill_writer(s3: S3, base: str, point: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "sfmc_assets_tests.deploy.killed_writer", base, point],
                          env={**os.environ, **s3.env}, capture_output=True, text=True, timeout=240)
    assert proc.returncode == -9, f"the writer was not killed ({proc.returncode}): {proc.stderr[-2000:]}"


def test_killed_after_staging_leaves_no_partition_and_the_rerun_writes_it(s3: S3) -> None:
    bucket = s3.bucket()
    base = f"s3://{bucket}/lake"
    _kill_writer(s3, base, "after_staging")
    keys = s3.keys(bucket)
    partition_key = f"lake/{'/'.join(KEY)}/{PARTITION}.parquet"
    assert partition_key not in keys
    orphans = [k for k in keys if k.startswith(f"lake/{STAGING_DIR}/")]
    assert len(orphans) == 1 and orphans[0].endswith(".parquet.tmp"), keys  # complete, under staging only
    lake = ParquetLake(base)
    assert not lake.exists(KEY, PARTITION)
    with pytest.raises(FileNotFoundError, match=f"partition {PARTITION} of sfmc/raw/killed has not been"):
        lake.read(KEY, PARTITION)
    assert lake.scan_many(KEY, [PARTITION]) is None

    rerun = pl.DataFrame({"id": list(range(700)), "run": ["rerun"] * 700})
    lake.write(rerun, KEY, PARTITION)
    assert lake.read(KEY, PARTITION).equals(rerun)
    assert lake.scan(KEY, PARTITION).collect().equals(rerun)  # Polars' own S3 reader, not fsspec
    listed = pl.scan_parquet(f"s3://{bucket}/lake/{'/'.join(KEY)}/*.parquet").collect()
    assert listed.equals(rerun)  # a glob over the asset's folder sees the one complete partition
    after = s3.keys(bucket)
    assert [k for k in after if not k.startswith(f"lake/{STAGING_DIR}/")] == [partition_key]
    assert [k for k in after if k.startswith(f"lake/{STAGING_DIR}/")] == orphans  # left for the lifecycle rule


def test_killed_mid_multipart_upload_leaves_nothing_visible(s3: S3) -> None:
    bucket = s3.bucket()
    base = f"s3://{bucket}/lake"
    _kill_writer(s3, base, "mid_upload")
    assert s3.keys(bucket) == []  # not the partition, not even the staged object
    uploads = s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["Key"].startswith(f"lake/{STAGING_DIR}/") for u in uploads] == [True]  # under way, invisible
    lake = ParquetLake(base)
    assert not lake.exists(KEY, PARTITION)
    rerun = pl.DataFrame({"id": [1, 2, 3]})
    lake.write(rerun, KEY, PARTITION)
    assert lake.read(KEY, PARTITION).equals(rerun)

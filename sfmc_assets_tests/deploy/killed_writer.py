"""A process that writes one lake partition and is SIGKILLed at a chosen point of the write.

    python -m sfmc_assets_tests.deploy.killed_writer <lake base uri> <point>

`after_staging`: the staged object is complete and the kill lands as the writer moves it onto the
partition's name (the library's rename is wrapped to kill the process at that call: our code runs as in
production up to it). `mid_upload`: 56 MiB of incompressible pages are written, more than s3fs's 50 MiB
block, so a multipart upload is under way (one part sent) when the process is killed before committing.
"""

import os
import signal
import sys

import polars as pl
from upath import UPath

from sfmc_assets.lib.lake import ParquetLake

KEY = ["sfmc", "raw", "killed"]
PARTITION = "2026-10-03"


def _die(*_: object, **__: object) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(base: str, point: str) -> None:
    lake = ParquetLake(base)
    if point == "after_staging":
        UPath.rename = _die  # type: ignore[method-assign]
        lake.write(pl.DataFrame({"id": list(range(1000)), "run": ["killed"] * 1000}), KEY, PARTITION)
    elif point == "mid_upload":
        schema = pl.Schema({"blob": pl.Binary()})
        with lake.writer(KEY, PARTITION, schema) as writer:
            for _ in range(4):
                writer.write(pl.DataFrame({"blob": [os.urandom(1 << 20) for _ in range(14)]}, schema=schema))
            _die()
    raise SystemExit(f"unknown point {point!r} or the process was not killed")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""What a data extension's partitions may hold: the columns kept, hashed, and the contacts suppressed.

Applied where rows enter the lake (each raw write batch) and again when a clean partition is built.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from sfmc_assets.lib.config import DataExtensionConfig
from sfmc_assets.lib.lake import ParquetLake
from sfmc_assets.lib.marketing_cloud.fields import FieldSpec
from sfmc_assets.lib.marketing_cloud.types import PARSE_ERRORS
from sfmc_assets.lib.personal import hash_columns, lake_fields, lake_hashed_sources, person_columns
from sfmc_assets.lib.privacy.store import PrivacyStore
from sfmc_assets.lib.privacy.suppression import Suppression


@dataclass(frozen=True)
class LakePolicy:
    """`privacy:` of one data extension, with the installation's suppression list."""

    de: DataExtensionConfig
    suppression: Suppression | None

    @classmethod
    def load(cls, de: DataExtensionConfig, lake: ParquetLake) -> "LakePolicy":
        return cls(de, Suppression.load(PrivacyStore(lake.base)))

    def fields(self, served: Sequence[FieldSpec]) -> tuple[FieldSpec, ...]:
        """The fields a raw partition stores (minimised, hashed ones described as hashes)."""
        return lake_fields(self.de, served)

    def prepare(self, frame: pl.DataFrame, fields: Sequence[FieldSpec]) -> tuple[pl.DataFrame, int]:
        """One raw batch as it may be stored: suppressed contacts dropped (matched in clear, before any
        hashing), unkept columns dropped, hashed columns hashed; (batch, rows suppressed)."""
        suppressed = 0
        if self.suppression is not None:
            frame, suppressed = self.suppression.filter(frame, person_columns(self.de, fields))
        kept = {f.name for f in self.fields(fields)} | {PARSE_ERRORS}
        frame = frame.select([c for c in frame.columns if c in kept])
        return hash_columns(frame, lake_hashed_sources(self.de, fields)), suppressed

    def suppress_clean(self, frame: pl.LazyFrame, fields: Sequence[FieldSpec]) -> tuple[pl.LazyFrame, int]:
        """A clean partition (lazy) without suppressed contacts; (rows, rows suppressed)."""
        if self.suppression is None:
            return frame, 0
        return self.suppression.filter_lazy(frame, person_columns(self.de, fields))

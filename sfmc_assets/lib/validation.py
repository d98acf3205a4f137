"""Running a contract on a partition: split valid rows from failing ones, summarise for the UI.

Validation is lazy (every failure collected, not just the first) on a collected DataFrame (pandera
skips data checks on a LazyFrame unless told otherwise, notes G5). Row-level failures can be
quarantined; failures not tied to rows (a missing column, a wrong dtype) always block.
"""

from dataclasses import dataclass

import pandera.polars as pa
import polars as pl
from pandera.errors import SchemaErrors

from sfmc_assets.lib.metadata import PII_ROLES

REJECTION_REASONS = "_rejection_reasons"
_INDEX = "__row"


@dataclass(frozen=True)
class GateResult:
    """The outcome of one partition's validation."""

    valid: pl.DataFrame
    quarantined: pl.DataFrame
    failure_cases: pl.DataFrame
    rows_checked: int
    blocking_schema_errors: bool

    @property
    def failing_rows(self) -> int:
        return self.quarantined.height

    def within(self, tolerance: float) -> bool:
        """Whether the valid rows may be published, the failing ones being quarantined."""
        if self.blocking_schema_errors:
            return False
        if self.failing_rows == 0:
            return True
        return self.rows_checked > 0 and self.failing_rows / self.rows_checked <= tolerance

    def failures_by_rule(self) -> dict[str, int]:
        if self.failure_cases.is_empty():
            return {}
        counts = (
            self.failure_cases.group_by("column", "check").len().sort("len", descending=True)
            .with_columns(pl.format("{}: {}", pl.col("column").fill_null("<table>"), pl.col("check")).alias("rule"))
        )
        return dict(zip(counts["rule"].to_list(), counts["len"].to_list(), strict=True))

    def sample(self, n: int = 10) -> pl.DataFrame:
        """Failing values with their rule, personal columns masked (this goes into the event log)."""
        cases = self.failure_cases
        if cases.is_empty():
            return cases
        masked = pl.col("column").is_in(list(PII_ROLES))
        value = pl.col("failure_case").cast(pl.String)
        return cases.head(n).select(
            pl.col("index").alias("row"),
            pl.col("column").fill_null("<table>"),
            pl.col("check"),
            pl.when(masked).then(value.str.slice(0, 1) + "***").otherwise(value).alias("value"),
        )


def validate(frame: pl.DataFrame, schema: pa.DataFrameSchema) -> GateResult:
    """Validate every rule; rows named by a failure go to `quarantined` with their reasons."""
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as err:
        cases = err.failure_cases.with_columns(pl.col("failure_case").cast(pl.String))
    else:
        empty = pl.DataFrame(schema={"failure_case": pl.String, "schema_context": pl.String,
                                     "column": pl.String, "check": pl.String, "check_number": pl.Int32,
                                     "index": pl.Int32})
        return GateResult(frame, frame.clear().with_columns(pl.lit(None, pl.String).alias(REJECTION_REASONS)),
                          empty, frame.height, False)
    row_cases = cases.filter(pl.col("index").is_not_null())
    blocking = cases.height > row_cases.height
    reasons = (
        row_cases.group_by("index")
        .agg(pl.format("{}: {}", pl.col("column"), pl.col("check")).unique().sort().str.join("; ")
             .alias(REJECTION_REASONS))
        .with_columns(pl.col("index").cast(pl.UInt32).alias(_INDEX))
        .drop("index")
    )
    indexed = frame.with_row_index(_INDEX)
    quarantined = indexed.join(reasons, on=_INDEX, how="inner").sort(_INDEX).drop(_INDEX)
    valid = indexed.join(reasons, on=_INDEX, how="anti").drop(_INDEX)
    return GateResult(valid, quarantined, cases, frame.height, blocking)

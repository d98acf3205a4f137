"""When a full snapshot (`sync: full`) of a data extension may be taken for a partition, and its deletes.

Marketing Cloud keeps no history of a data extension without a date column: a read returns the rows as
they are now. So the snapshot of day D can only be taken while D is recent (the newest partition, or a
missed one within the look-back, before any later snapshot exists); an older snapshot that was taken is
kept as it is (re-reading it now would rewrite history with today's rows), and an older one that was
never taken cannot be made up: asking for it fails, naming why.
"""

import datetime as dt
from collections.abc import Sequence
from typing import Literal

import polars as pl


class SnapshotUnavailableError(ValueError):
    """A past day's snapshot was never taken and can no longer be."""


def snapshot_action(day: dt.date, today: dt.date, taken: Sequence[dt.date],
                    lookback_days: int) -> Literal["read", "keep"]:
    """`read` the data extension now into `day`'s snapshot, or `keep` the one already taken."""
    newest = today - dt.timedelta(days=1)  # daily partitions end with the last complete day
    if day >= newest:
        return "read"
    if day in taken:
        return "keep"
    later = sorted(t for t in taken if t > day)
    if day >= newest - dt.timedelta(days=lookback_days) and not later:
        return "read"
    why = (f"a later snapshot ({later[0]}) was already taken" if later
           else f"it is more than {lookback_days} day(s) before the newest partition ({newest})")
    raise SnapshotUnavailableError(
        f"the snapshot of {day} cannot be taken: Marketing Cloud keeps no history of a data extension read "
        f"with `sync: full`, and {why}. Materialise the newest partitions; set the data extension's "
        "`start_date` to the first day you want snapshots for."
    )


def deleted_keys(previous: pl.LazyFrame, current: pl.LazyFrame, key: Sequence[str]) -> pl.DataFrame:
    """The keys the previous snapshot holds and the current one does not (rows deleted in between)."""
    return previous.select(key).unique().join(current.select(key).unique(), on=list(key), how="anti",
                                              nulls_equal=True).sort(list(key)).collect()


#: Columns a deletes partition adds to the deleted rows' keys.
DELETED_ON = "deleted_on"
LAST_SEEN_ON = "last_seen_on"


def snapshot_deletes(previous: pl.LazyFrame, current: pl.LazyFrame, key: Sequence[str], day: dt.date,
                     previous_day: dt.date) -> pl.DataFrame:
    """Rows of the previous snapshot whose key the current snapshot no longer holds."""
    gone = deleted_keys(previous, current, key)
    return gone.with_columns(pl.lit(day).alias(DELETED_ON), pl.lit(previous_day).alias(LAST_SEEN_ON))


def alive_keys(seen: pl.LazyFrame, deletes: pl.LazyFrame | None, key: Sequence[str]) -> pl.LazyFrame:
    """Keys believed to exist: seen in a clean partition (`seen`: key columns + `last_seen_on`) after their
    latest recorded delete, if any (`deletes`: key columns + `deleted_on`). A key deleted and later
    written again is alive again."""
    last_seen = seen.group_by(key).agg(pl.col(LAST_SEEN_ON).max())
    if deletes is None:
        return last_seen
    last_deleted = deletes.group_by(key).agg(pl.col(DELETED_ON).max())
    return last_seen.join(last_deleted, on=list(key), how="left", nulls_equal=True).filter(
        pl.col(DELETED_ON).is_null() | (pl.col(LAST_SEEN_ON) > pl.col(DELETED_ON))
    ).drop(DELETED_ON)


def reconciled_deletes(alive: pl.LazyFrame, in_source: pl.LazyFrame, key: Sequence[str],
                       day: dt.date) -> pl.DataFrame:
    """Alive keys that Marketing Cloud no longer holds: deleted there, unseen by incremental reads."""
    gone = alive.join(in_source.select(key).unique(), on=list(key), how="anti", nulls_equal=True)
    return gone.select(*key, pl.lit(day).alias(DELETED_ON), LAST_SEEN_ON).sort(list(key)).collect()

"""Partition windows: one UTC day, and the windows of days that end with a day.

Every layer uses these: the extract's `$filter`, the gate's "delta value inside the day" rule, the
segment windows (`engagement_window_days`, `activity_window_days`) and the days they read.
"""

import datetime as dt
from dataclasses import dataclass

UTC = dt.timezone.utc


@dataclass(frozen=True)
class Window:
    """A half-open UTC interval `[start, end)`."""

    start: dt.datetime
    end: dt.datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None or self.end <= self.start:
            raise ValueError(f"a window needs aware datetimes with start < end, got {self.start}..{self.end}")

    @classmethod
    def day(cls, partition_key: str) -> "Window":
        start = dt.datetime.fromisoformat(partition_key).replace(tzinfo=UTC)
        return cls(start, start + dt.timedelta(days=1))

    def __str__(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"


def day_end(day: dt.date) -> dt.datetime:
    """The end of UTC day `day` (the start of the next)."""
    return Window.day(day.isoformat()).end


def window_start(day: dt.date, days: int) -> dt.datetime:
    """Start of the `days`-day window ending with (and including) day `day`."""
    return day_end(day) - dt.timedelta(days=days)


def days_back(day: dt.date, n: int) -> list[str]:
    """The partition keys of the `n` days ending with `day`, oldest first."""
    return [(day - dt.timedelta(days=i)).isoformat() for i in range(n - 1, -1, -1)]

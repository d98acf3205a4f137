"""Partition windows: one UTC day, and the N-day windows that end with a day."""

import datetime as dt

import pytest

from sfmc_assets.lib.windows import UTC, Window, day_end, days_back, window_start


def test_a_day_is_a_half_open_utc_interval() -> None:
    w = Window.day("2026-10-25")  # the day Europe leaves summer time: still 24 hours in UTC
    assert w.start == dt.datetime(2026, 10, 25, tzinfo=UTC)
    assert w.end - w.start == dt.timedelta(days=1)
    assert str(w) == "[2026-10-25T00:00:00+00:00, 2026-10-26T00:00:00+00:00)"


@pytest.mark.parametrize(("start", "end"), [
    (dt.datetime(2026, 10, 1), dt.datetime(2026, 10, 2, tzinfo=UTC)),  # naive start
    (dt.datetime(2026, 10, 2, tzinfo=UTC), dt.datetime(2026, 10, 2, tzinfo=UTC)),  # empty
    (dt.datetime(2026, 10, 3, tzinfo=UTC), dt.datetime(2026, 10, 2, tzinfo=UTC)),  # reversed
])
def test_a_window_must_be_aware_and_non_empty(start: dt.datetime, end: dt.datetime) -> None:
    with pytest.raises(ValueError, match="start < end"):
        Window(start, end)


def test_windows_ending_with_a_day_include_it() -> None:
    day = dt.date(2026, 3, 1)  # across the end of February
    assert day_end(day) == dt.datetime(2026, 3, 2, tzinfo=UTC)
    assert window_start(day, 1) == dt.datetime(2026, 3, 1, tzinfo=UTC)
    assert window_start(day, 7) == dt.datetime(2026, 2, 23, tzinfo=UTC)
    assert days_back(day, 3) == ["2026-02-27", "2026-02-28", "2026-03-01"]
    assert days_back(day, 1) == ["2026-03-01"]


def test_days_back_matches_the_window() -> None:
    day = dt.date(2026, 12, 31)
    for n in (1, 7, 30, 366):
        keys = days_back(day, n)
        assert len(keys) == n == len(set(keys))
        assert Window.day(keys[0]).start == window_start(day, n) and Window.day(keys[-1]).end == day_end(day)

"""The incremental contact state against the definition it replaces: the latest row per contact over every
contacts partition up to the day, recomputed from scratch here for each day."""

import datetime as dt
import random
from pathlib import Path

import polars as pl
import pytest

from sfmc_assets.lib.contact_state import contact_state
from sfmc_assets.lib.lake import ParquetLake

UTC = dt.timezone.utc
START = dt.date(2026, 10, 1)
DAYS = [START + dt.timedelta(days=i) for i in range(12)]
PATH = ["sfmc", "clean", "contacts"]


def _day_rows(day: dt.date, rng: random.Random, n: int = 40) -> pl.DataFrame:
    """Contacts modified on `day`: some new, some re-modified (a later row of an existing contact)."""
    keys = sorted({f"C{rng.randrange(120):03d}" for _ in range(n)})
    return pl.DataFrame({
        "contact_key": keys,
        "lifecycle_stage": [rng.choice(["new", "repeat", "loyal", "inactive"]) for _ in keys],
        "opt_in": [rng.choice([True, False, None]) for _ in keys],
        "modified_at": [dt.datetime.combine(day, dt.time(rng.randrange(24), rng.randrange(60)), tzinfo=UTC)
                        for _ in keys],
    })


def _truth(store: ParquetLake, day: dt.date) -> pl.DataFrame:
    """From scratch: every partition up to `day`, latest row per contact."""
    parts = [store.read(PATH, d.isoformat()) for d in DAYS if d <= day and store.exists(PATH, d.isoformat())]
    return (pl.concat(parts).sort("modified_at").unique("contact_key", keep="last").sort("contact_key")
            .select("contact_key", "lifecycle_stage", "opt_in", "modified_at"))


@pytest.fixture
def store(tmp_path: Path) -> ParquetLake:
    lake = ParquetLake(str(tmp_path / "lake"))
    rng = random.Random(14)
    for day in DAYS:
        if day != DAYS[5]:  # a day without a partition (not materialised) is simply not part of the state
            lake.write(_day_rows(day, rng), PATH, day.isoformat())
    return lake


def _state(store: ParquetLake):
    return contact_state(store, "contacts", PATH, START)


def test_each_day_equals_the_latest_row_per_contact_up_to_that_day(store: ParquetLake) -> None:
    state = _state(store)
    for day in DAYS:
        got = state.as_of(day).select("contact_key", "lifecycle_stage", "opt_in", "modified_at")
        assert got.equals(_truth(store, day)), day
    # another process, later: starts from the last snapshot, and still agrees
    assert _state(store).as_of(DAYS[-1]).select(_truth(store, DAYS[-1]).columns).equals(_truth(store, DAYS[-1]))


def test_a_rerun_of_an_old_day_is_never_hidden_by_a_later_snapshot(store: ParquetLake) -> None:
    _state(store).as_of(DAYS[-1])  # snapshots for every day
    rerun = DAYS[3]
    old = store.read(PATH, rerun.isoformat())
    changed = old.with_columns(pl.lit("inactive").alias("lifecycle_stage"),
                               pl.lit(False).alias("opt_in"))  # same contacts, new values
    store.write(changed, PATH, rerun.isoformat())  # what re-materialising that day does
    for day in (rerun, DAYS[7], DAYS[-1]):
        got = _state(store).as_of(day).select("contact_key", "lifecycle_stage", "opt_in", "modified_at")
        assert got.equals(_truth(store, day)), day
    snapshots = store.versions(["_state", "latest_contacts", "contacts"])
    assert len([n for n in snapshots if n.startswith(f"{DAYS[-1]}__")]) == 1  # the stale one was replaced


def test_a_day_filled_in_later_changes_every_later_state(store: ParquetLake) -> None:
    state = _state(store)
    before = state.as_of(DAYS[-1])
    store.write(_day_rows(DAYS[5], random.Random(99)), PATH, DAYS[5].isoformat())
    after = _state(store).as_of(DAYS[-1]).select("contact_key", "lifecycle_stage", "opt_in", "modified_at")
    assert after.equals(_truth(store, DAYS[-1]))
    assert not after.equals(before.select(after.columns))


def test_no_contacts_yet_is_an_empty_state(tmp_path: Path) -> None:
    lake = ParquetLake(str(tmp_path / "lake"))
    lake.write(_day_rows(DAYS[0], random.Random(1)).clear(), PATH, DAYS[0].isoformat())  # an empty day
    got = contact_state(lake, "contacts", PATH, START).as_of(DAYS[2])
    assert got.height == 0 and "modified_at" in got.columns

"""Every contact as known at the end of a day, kept day by day instead of re-read from all of history.

The contacts data extension arrives as one clean partition per day of `modified_at`; "the contacts as
known at the end of day D" is the latest row of each contact over every partition up to D. Re-reading
all of them for every day costs O(days^2) over a backfill. Here state(D) = state(D-1) updated with the
rows of partition D, and each day's state is kept as a snapshot in the lake, so a day costs one
snapshot (or the state in memory) plus one partition.

A snapshot can never be used stale: its file name carries a fingerprint of exactly what it was derived
from, a hash chained over the version of every contacts partition up to its day (`ParquetLake.versions`:
the file's ETag, or size, mtime and inode). Re-materialising contacts day D changes D's version, so every
snapshot from D on stops matching and is rebuilt from the last snapshot before D; nothing has to be
invalidated by hand, and a rerun of an old day can never leave later days computed from the old rows.
"""

import datetime as dt
import hashlib
from collections.abc import Sequence

import polars as pl

from sfmc_assets.lib.lake import ParquetLake

#: Bump when the content of a snapshot changes meaning: older snapshots then stop matching.
_FORMAT = "contact-state-v1"
_SEP = "__"
_EMPTY = pl.DataFrame(schema={"contact_key": pl.String})


def _day(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


def latest_per_contact(frames: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """One row per contact: the one with the latest `modified_at` (ties: the last frame given wins)."""
    with_rows = [f for f in frames if f.height]
    if not with_rows:
        return max(frames, key=lambda f: f.width)  # no contact yet: keep the widest schema seen
    merged = with_rows[0] if len(with_rows) == 1 else pl.concat(with_rows, how="diagonal_relaxed")
    return merged.sort("modified_at", maintain_order=True).unique(
        "contact_key", keep="last", maintain_order=True).sort("contact_key")


class ContactState:
    """The contacts as known at the end of each day, for one contacts data extension.

    `contacts` is the clean asset's key path, `state` where snapshots go, `start` its first partition.
    Reads are per day and cheap in order (a ranged step asks for D, D+1, ...): the last state stays in
    memory and each new day reads one partition.
    """

    def __init__(self, store: ParquetLake, contacts: Sequence[str], state: Sequence[str], start: dt.date) -> None:
        self.store, self.contacts, self.state, self.start = store, list(contacts), list(state), start
        self._versions: dict[str, str] | None = None
        self._snapshots: set[str] | None = None
        self._chain: dict[dt.date, str] = {}
        self._memory: tuple[dt.date, str, pl.DataFrame] | None = None

    # -- fingerprints ---------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Forget what was listed so far (call when contacts may have been rewritten since)."""
        self._versions, self._snapshots, self._chain = None, None, {}

    def versions(self) -> dict[str, str]:
        """Version of each contacts partition, listed once (one call to the store)."""
        if self._versions is None:
            self._versions = self.store.versions(self.contacts)
        return self._versions

    def fingerprint(self, day: dt.date) -> str:
        """What state(`day`) is derived from: every contacts partition up to `day`, by version."""
        current = self.start - dt.timedelta(days=1)
        fp = hashlib.sha256(f"{_FORMAT}|{'/'.join(self.contacts)}".encode()).hexdigest()[:20]
        if day <= current:
            return fp
        if self._chain:  # extend the chain from its last day instead of from the start
            last = max(self._chain)
            if last >= day:
                return self._chain[day]
            current, fp = last, self._chain[last]
        while current < day:
            current += dt.timedelta(days=1)
            fp = hashlib.sha256(f"{fp}|{current}={self.versions().get(current.isoformat(), 'absent')}".encode()
                                ).hexdigest()[:20]
            self._chain[current] = fp
        return fp

    # -- the state ------------------------------------------------------------------------------------

    def as_of(self, day: dt.date, _attempts: int = 3) -> pl.DataFrame:
        """The latest clean row of every contact modified before the end of `day` (all its columns)."""
        base_day, frame = self._closest_known(day)
        current = base_day + dt.timedelta(days=1)
        try:
            while current <= day:
                rows = self._read_partition(current)
                if rows is not None and (rows.height or rows.width > frame.width):
                    frame = latest_per_contact([frame, rows])
                self._remember(current, frame)
                current += dt.timedelta(days=1)
        except _Rewritten:
            if _attempts <= 1:
                raise RuntimeError(f"contacts partitions of {'/'.join(self.contacts)} keep changing while the "
                                   f"state as of {day} is derived; retry once the run writing them is done") from None
            self.refresh()
            self._memory = None
            return self.as_of(day, _attempts - 1)
        return frame

    def contact_keys(self, day: dt.date) -> pl.Series:
        return self.as_of(day).get_column("contact_key")

    def _closest_known(self, day: dt.date) -> tuple[dt.date, pl.DataFrame]:
        """The newest valid state at or before `day`: in memory, else a snapshot, else the empty state."""
        best_day, best = self.start - dt.timedelta(days=1), _EMPTY
        if self._memory and self._memory[0] <= day and self._memory[1] == self.fingerprint(self._memory[0]):
            best_day, _, best = self._memory
            if best_day >= day - dt.timedelta(days=1):
                return best_day, best  # one partition away at most: no need to look for a snapshot
        found = {}
        for name in self._snapshot_names():
            stamp, _, fp = name.partition(_SEP)
            if fp and best_day < _day(stamp) <= day:
                found[_day(stamp)] = fp
        for snap_day in sorted(found, reverse=True):
            if found[snap_day] == self.fingerprint(snap_day):
                return snap_day, self.store.read(self.state, f"{snap_day}{_SEP}{found[snap_day]}")
        return best_day, best

    def _snapshot_names(self) -> set[str]:
        if self._snapshots is None:
            self._snapshots = set(self.store.versions(self.state))
        return self._snapshots

    def _read_partition(self, day: dt.date) -> pl.DataFrame | None:
        """Partition `day`, read so that its content is the version its fingerprint names."""
        listed = self.versions().get(day.isoformat())
        if listed is None:
            return None
        frame = self.store.read(self.contacts, day.isoformat())
        if self.store.version(self.contacts, day.isoformat()) != listed:
            raise _Rewritten  # a contacts run is writing: what we read may not be what the fingerprint names
        return frame

    def _remember(self, day: dt.date, frame: pl.DataFrame) -> None:
        fp = self.fingerprint(day)
        self._memory = (day, fp, frame)
        name = f"{day}{_SEP}{fp}"
        names = self._snapshot_names()
        if name not in names:
            self.store.write(frame, self.state, name)
            for other in [n for n in names if n.startswith(f"{day}{_SEP}")]:
                self.store.delete(self.state, other)  # derived from rows that have been replaced since
                names.discard(other)
            names.add(name)


class _Rewritten(Exception):
    """A contacts partition changed between listing and reading it."""

def contact_state(store: ParquetLake, contacts_name: str, contacts_path: Sequence[str], start: dt.date) -> ContactState:
    """The state of the contacts data extension `contacts_name`, snapshots under `_state/latest_contacts/`.

    Make one per step (or per read): it lists the partitions once, so it must not outlive the run that
    may rewrite them.
    """
    return ContactState(store, contacts_path, ["_state", "latest_contacts", contacts_name], start)

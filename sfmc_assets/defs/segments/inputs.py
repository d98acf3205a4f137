"""What the segment assets read for a day, and whether they may: the upstream days of each window.

Day D of `contact_features` needs every contacts day up to D (the contacts as known at the end of D),
the engagement days of the engagement window ending with D and the activity days of the activity window.
A step covering a range of days asks Dagster once which of those upstream days are usable (materialised,
not failed since: `ranges.unusable_days`), reads the contacts through the incremental contact state and
aggregates each engagement and activity day once, however many windows contain it. It also remembers
which file version of each input it read, for the `inputs_complete` check.
"""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import dagster as dg
import polars as pl

from sfmc_assets.defs.clean.assets import clean_key
from sfmc_assets.defs.ranges import describe_days, unusable_days
from sfmc_assets.lib.config import DataExtensionConfig, ProjectConfig, SegmentRules
from sfmc_assets.lib.contact_state import ContactState, contact_state
from sfmc_assets.lib.lake import ParquetLake
from sfmc_assets.lib.segments import activity_totals, engagement_totals, sum_totals

_EMPTY = {
    "engagement": {"contact_key": pl.String, "action": pl.String, "sentiment": pl.String,
                   "event_at": pl.Datetime("us", "UTC")},
    "activities": {"contact_key": pl.String, "activity_kind": pl.String, "activity_at": pl.Datetime("us", "UTC")},
}


def days_back(day: dt.date, n: int) -> list[str]:
    """The `n` days ending with `day`, oldest first."""
    return [(day - dt.timedelta(days=i)).isoformat() for i in range(n - 1, -1, -1)]


@dataclass
class Input:
    """One upstream clean asset and the days of it that day D needs (`window` days, or all up to D)."""

    name: str
    de: DataExtensionConfig
    partitions_def: dg.DailyPartitionsDefinition
    window: int | None  # None: every day from the start of its partitions
    versions: dict[str, str] = field(default_factory=dict)  # the lake's file versions when listed

    @property
    def key(self) -> dg.AssetKey:
        return clean_key(self.de)

    def needed(self, day: dt.date) -> list[str]:
        first = dt.date.fromisoformat(self.partitions_def.start.date().isoformat())
        if self.window is None:
            return [d.isoformat() for d in _dates(first, day)]
        return [d for d in days_back(day, self.window) if dt.date.fromisoformat(d) >= first]


def _dates(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


class SegmentInputs:
    """The inputs of one segments step over `days`, read lazily and each upstream day at most once."""

    def __init__(self, instance: dg.DagsterInstance, store: ParquetLake, config: ProjectConfig,
                 rules: SegmentRules, partitions_of: dict[str, dg.DailyPartitionsDefinition]) -> None:
        self.store = store
        self._args = (instance, store, config, rules, partitions_of)
        self.inputs = {
            "contacts": Input("contacts", config.data_extension(rules.contacts), partitions_of["contacts"], None),
            "engagement": Input("engagement", config.data_extension(rules.engagement),
                                partitions_of["engagement"], rules.engagement_window_days),
            "activities": Input("activities", config.data_extension(rules.activities),
                                partitions_of["activities"], rules.activity_window_days),
        }
        self.instance = instance
        contacts = self.inputs["contacts"]
        self.state: ContactState = contact_state(store, contacts.de.name, contacts.key.path,
                                                 dt.date.fromisoformat(contacts.partitions_def.start.date().isoformat()))
        self._unusable: dict[str, dict[str, str]] = {}
        self._totals: dict[tuple[str, str], pl.DataFrame] = {}

    def prepare(self, days: Sequence[dt.date]) -> None:
        """Ask Dagster once which upstream days the whole range may use, and list the lake once."""
        last = max(days)
        for name, inp in self.inputs.items():
            wanted = sorted({d for day in days for d in inp.needed(day)} if inp.window else inp.needed(last))
            self._unusable[name] = unusable_days(self.instance, inp.key, inp.partitions_def, wanted)
            inp.versions = self.store.versions(inp.key.path)
        self.state.refresh()

    def relisted(self) -> "SegmentInputs":
        """The same inputs with the lake listed again (what the files are now)."""
        again = SegmentInputs(*self._args)
        for inp in again.inputs.values():
            inp.versions = again.store.versions(inp.key.path)
        return again

    def missing(self, day: dt.date) -> str | None:
        """Why day `day` cannot be computed (the upstream days it lacks, named), or None."""
        problems = []
        for name, inp in self.inputs.items():
            bad = {d: why for d in inp.needed(day) if (why := self._unusable[name].get(d))}
            for why in sorted(set(bad.values())):
                problems.append(f"{inp.key.to_user_string()} {describe_days([d for d, w in bad.items() if w == why])} "
                                f"({why})")
        return "; ".join(problems) or None

    def contacts(self, day: dt.date) -> pl.LazyFrame:
        return self.state.as_of(day).lazy()

    def window_totals(self, name: str, day: dt.date) -> pl.LazyFrame:
        """Per-contact totals of input `name` over its window ending with `day` (each day read once)."""
        inp = self.inputs[name]
        totals = engagement_totals if name == "engagement" else activity_totals
        parts = []
        for partition in inp.needed(day):
            if (name, partition) not in self._totals:
                frame = (self.store.scan(inp.key.path, partition) if partition in inp.versions
                         else pl.LazyFrame(schema=_EMPTY[name]))
                self._totals[(name, partition)] = totals(frame).collect()
            parts.append(self._totals[(name, partition)])
        if not parts:
            parts.append(totals(pl.LazyFrame(schema=_EMPTY[name])).collect())
        self._forget_before(name, inp.needed(day)[0] if inp.needed(day) else day.isoformat())
        return sum_totals(parts, "last_engagement_at" if name == "engagement" else "last_activity_at")

    def _forget_before(self, name: str, first: str) -> None:
        """Drop the totals of days no later window needs (days are processed in order)."""
        for key in [k for k in self._totals if k[0] == name and k[1] < first]:
            del self._totals[key]

    def read_versions(self, day: dt.date) -> dict[str, dict[str, str | None]]:
        """The file version of each upstream day that day `day` was computed from (None: no file)."""
        out: dict[str, dict[str, str | None]] = {}
        for name, inp in self.inputs.items():
            if inp.window is None:  # every day up to `day`: named by the state's fingerprint, gaps listed
                out[name] = {"fingerprint": self.state.fingerprint(day),
                             **{d: None for d in inp.needed(day) if d not in self.state.versions()}}
            else:
                out[name] = {d: inp.versions.get(d) for d in inp.needed(day)}
        return out

"""What the segment assets read for a day, and whether they may: the upstream days of each window.

Day D of `contact_features` needs every contacts day up to D (the contacts as known at the end of D),
the engagement days of the engagement window ending with D (of the engagement data extension, of each
tracking-event type, or both, as `segments.engagement_source` says) and the activity days of the activity window.
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
from sfmc_assets.defs.events.assets import clean_key as event_clean_key
from sfmc_assets.defs.events.assets import partitions as event_partitions
from sfmc_assets.defs.partitions import daily_partitions
from sfmc_assets.defs.ranges import describe_days, unusable_days
from sfmc_assets.lib.config import ProjectConfig, SegmentRules
from sfmc_assets.lib.contact_state import ContactState, contact_state
from sfmc_assets.lib.engagement import engagement_rows
from sfmc_assets.lib.events import configured
from sfmc_assets.lib.lake import ParquetLake
from sfmc_assets.lib.segments import activity_totals, engagement_totals, sum_totals
from sfmc_assets.lib.windows import days_back

_EMPTY_ACTIVITIES = {"contact_key": pl.String, "activity_kind": pl.String,
                     "activity_at": pl.Datetime("us", "UTC")}


@dataclass
class Input:
    """One upstream clean asset and the days of it that day D needs (`window` days, or all up to D).

    `feeds` is what it counts for: `contacts`, `activities`, or `engagement` (the engagement data
    extension, or one tracking-event type, `event`, as `segments.engagement_source` says).
    """

    name: str
    key: dg.AssetKey
    feeds: str
    partitions_def: dg.DailyPartitionsDefinition
    window: int | None  # None: every day from the start of its partitions
    event: str | None = None
    versions: dict[str, str] = field(default_factory=dict)  # the lake's file versions when listed

    @property
    def first(self) -> dt.date:
        return dt.date.fromisoformat(self.partitions_def.start.date().isoformat())

    def needed(self, day: dt.date) -> list[str]:
        if self.window is None:
            return [d.isoformat() for d in _dates(self.first, day)]
        return [d for d in days_back(day, self.window) if dt.date.fromisoformat(d) >= self.first]


def _dates(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def segment_inputs(config: ProjectConfig, rules: SegmentRules) -> dict[str, Input]:
    """Every upstream clean asset the segment features read, by name."""
    def de_input(name: str, feeds: str, window: int | None) -> Input:
        de = config.data_extension(name)
        return Input(de.name, clean_key(de), feeds, daily_partitions(config.start_date_of(de)), window)

    inputs = [de_input(rules.contacts, "contacts", None)]
    if rules.engagement_source != "events":
        inputs.append(de_input(rules.engagement, "engagement", rules.engagement_window_days))
    if rules.engagement_source != "data_extension":
        inputs += [Input(f"events/{e.name}", event_clean_key(e), "engagement", event_partitions(config),
                         rules.engagement_window_days, event=e.name) for e in configured(config)]
    inputs.append(de_input(rules.activities, "activities", rules.activity_window_days))
    return {i.name: i for i in inputs}


class SegmentInputs:
    """The inputs of one segments step over `days`, read lazily and each upstream day at most once."""

    def __init__(self, instance: dg.DagsterInstance, store: ParquetLake, config: ProjectConfig,
                 rules: SegmentRules) -> None:
        self.store = store
        self._args = (instance, store, config, rules)
        self.rules = rules
        self.inputs = segment_inputs(config, rules)
        self.instance = instance
        contacts = next(i for i in self.inputs.values() if i.feeds == "contacts")
        self.state: ContactState = contact_state(store, contacts.name, contacts.key.path, contacts.first)
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

    def window_days(self, feeds: str) -> int:
        return self.rules.engagement_window_days if feeds == "engagement" else self.rules.activity_window_days

    def window_totals(self, feeds: str, day: dt.date) -> pl.LazyFrame:
        """Per-contact totals of `feeds` (engagement or activities) over its window ending with `day`.

        Each upstream day is read and aggregated once, however many windows of the step contain it.
        """
        window = days_back(day, self.window_days(feeds))
        parts = []
        for partition in window:
            if (feeds, partition) not in self._totals:
                self._totals[(feeds, partition)] = self._day_totals(feeds, partition)
            parts.append(self._totals[(feeds, partition)])
        for key in [k for k in self._totals if k[0] == feeds and k[1] < window[0]]:
            del self._totals[key]  # days are processed in order: no later window needs it
        return sum_totals(parts, "last_engagement_at" if feeds == "engagement" else "last_activity_at")

    def _day_totals(self, feeds: str, partition: str) -> pl.DataFrame:
        frames = {inp.name: self.store.scan(inp.key.path, partition) if partition in inp.versions else None
                  for inp in self.inputs.values() if inp.feeds == feeds
                  and dt.date.fromisoformat(partition) >= inp.first}
        if feeds == "activities":
            rows = next((f for f in frames.values() if f is not None), pl.LazyFrame(schema=_EMPTY_ACTIVITIES))
            return activity_totals(rows).collect()
        events = {self.inputs[n].event: f for n, f in frames.items() if self.inputs[n].event}
        de = next((f for n, f in frames.items() if not self.inputs[n].event), None)
        return engagement_totals(engagement_rows(de, events, self.rules.engagement_source)).collect()  # type: ignore[arg-type]

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

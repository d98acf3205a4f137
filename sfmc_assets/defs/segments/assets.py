"""Segment-ready tables: `segments/contact_features` and `segments/segment_membership`, one set per day.

Each day D is computed as of the end of UTC day D from the clean tables: the latest row of every
contact up to D, engagement over the engagement window ending with D, activities over the activity
window ending with D (time-window partition mappings declare exactly those upstream days). The rows of
D are replaced in the warehouse, so a backfill or a re-run leaves one set of rows per day.
"""

import datetime as dt
import time
from collections.abc import Iterator

import dagster as dg
import polars as pl

from sfmc_assets.defs.clean.assets import clean_key
from sfmc_assets.defs.events.assets import clean_key as event_clean_key
from sfmc_assets.defs.partitions import daily_partitions
from sfmc_assets.defs.ranges import DayResult, report
from sfmc_assets.lib import segment_checks
from sfmc_assets.lib.config import DataExtensionConfig, ProjectConfig, SegmentRules
from sfmc_assets.lib.engagement import engagement_rows
from sfmc_assets.lib.events import EventType, configured
from sfmc_assets.lib.lake import ParquetLake
from sfmc_assets.lib.segments import SEGMENTS, contact_features, memberships
from sfmc_assets.resources import LakeResource, WarehouseResource

SEGMENTS_GROUP = "segments"
FEATURES_KEY = dg.AssetKey(["segments", "contact_features"])
MEMBERSHIP_KEY = dg.AssetKey(["segments", "segment_membership"])
EXCLUSIVE_CHECK = "promotion_excludes_service_follow_up"
MEMBERS_CHECK = "members_exist_in_contact_features"


def _window(days: int) -> dg.TimeWindowPartitionMapping:
    return dg.TimeWindowPartitionMapping(start_offset=-(days - 1), allow_nonexistent_upstream_partitions=True)


def build_segment_assets(config: ProjectConfig) -> list[dg.AssetsDefinition]:
    rules = config.segments
    if rules is None:
        return []
    contacts = config.data_extension(rules.contacts)
    engagement = config.data_extension(rules.engagement) if rules.engagement_source != "events" else None
    activities = config.data_extension(rules.activities)
    # Tracking events feed the engagement counts when `engagement_source` says so (lib/engagement.py).
    events = configured(config) if rules.engagement_source != "data_extension" else []
    start = max(config.start_date_of(d) for d in (contacts, engagement, activities) if d is not None)
    partitions_def = daily_partitions(start)
    contact_partitions = daily_partitions(config.start_date_of(contacts))
    common = {
        "partitions_def": partitions_def,
        "group_name": SEGMENTS_GROUP,
        "owners": list(contacts.owners),
        "backfill_policy": dg.BackfillPolicy.single_run(),
        "code_version": "1",
    }

    @dg.asset(
        key=FEATURES_KEY,
        deps=[
            dg.AssetDep(clean_key(contacts)),
            *[dg.AssetDep(key, partition_mapping=_window(rules.engagement_window_days))
              for key in ([clean_key(engagement)] if engagement else []) + [event_clean_key(e) for e in events]],
            dg.AssetDep(clean_key(activities), partition_mapping=_window(rules.activity_window_days)),
        ],
        kinds={"duckdb", "polars", "table"},
        tags={"layer": "segments", "domain": "marketing"},
        description=(
            "One row per contact known at the end of the UTC day (its latest clean row up to that day), with "
            f"engagement counts over {rules.engagement_window_days} days (from {_SOURCES[rules.engagement_source]}) "
            "and activity counts over "
            f"{rules.activity_window_days} days ending with the day, last engagement/activity times, and "
            "whether it is eligible for audiences (opted in, valid e-mail) or why not."
        ),
        metadata={"dagster/table_name": "segments.contact_features"},
        **common,
    )
    def _features(
        context: dg.AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource
    ) -> Iterator[dg.MaterializeResult]:
        store, wh = lake.lake(), warehouse.warehouse()
        days = []
        for partition in context.partition_keys:
            started = time.monotonic()
            day = dt.date.fromisoformat(partition)
            frames = {
                name: store.scan_many(clean_key(de).path, keys)
                for name, de, keys in (
                    ("contacts", contacts, contact_partitions.get_partition_keys(current_time=_end(day))),
                    ("activities", activities, _days(day, rules.activity_window_days)),
                )
            }
            frames["engagement"] = _engagement(store, rules, engagement, events, day)
            if frames["contacts"] is None:
                days.append(DayResult(partition, failure=f"no clean {contacts.name} partition up to {partition}: "
                                      f"materialise sfmc/clean/{contacts.name} first"))
                continue
            features = contact_features(
                frames["contacts"], _or_empty(frames["engagement"], "engagement"),
                _or_empty(frames["activities"], "activities"), day, rules,
            )
            wh.replace_days("contact_features", features, [day])
            excluded = features.filter(~pl.col("eligible")).group_by("exclusion_reason").len()
            days.append(DayResult(partition, metadata={
                "dagster/partition_row_count": features.height,
                "eligible_contacts": int(features["eligible"].sum()),
                **{f"excluded/{r}": n for r, n in excluded.iter_rows()},
                "engagement_partitions_read": len(_days(day, rules.engagement_window_days)),
                "duration_s": round(time.monotonic() - started, 3),
            }))
        yield from report(context, FEATURES_KEY, days)

    @dg.asset(
        key=MEMBERSHIP_KEY,
        deps=[FEATURES_KEY],
        kinds={"duckdb", "polars", "table"},
        tags={"layer": "segments", "domain": "marketing"},
        description=(
            "One row per (as_of_date, segment, contact): who belongs to which audience that day, the reason and "
            "the evidence counts. Segments: welcome_offer, loyalty_reward, reengagement (lifecycle); promotion, "
            "service_follow_up (engagement); browse_reminder, form_follow_up (activities). Only eligible "
            "contacts are members; excluded candidates are counted per segment and reason in the metadata."
        ),
        metadata={"dagster/table_name": "segments.segment_membership"},
        check_specs=[
            dg.AssetCheckSpec(EXCLUSIVE_CHECK, asset=MEMBERSHIP_KEY, partitions_def=partitions_def,
                              description="No contact is in promotion and service_follow_up on the same day."),
            dg.AssetCheckSpec(MEMBERS_CHECK, asset=MEMBERSHIP_KEY, partitions_def=partitions_def,
                              description="Every member exists in contact_features for that day."),
        ],
        **common,
    )
    def _membership(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource
    ) -> Iterator[dg.MaterializeResult]:
        wh = warehouse.warehouse()
        days = []
        for partition in context.partition_keys:
            day = dt.date.fromisoformat(partition)
            features = wh.query("SELECT * FROM segments.contact_features WHERE as_of_date = ?", [day])
            if features.is_empty():
                days.append(DayResult(partition, failure=f"segments.contact_features has no rows for {partition}"))
                continue
            result = memberships(features, rules)
            wh.replace_days("segment_membership", result.members, [day])
            counts = dict(result.members.group_by("segment").len().iter_rows())
            checks = []
            for name, fn in ((EXCLUSIVE_CHECK, segment_checks.promotion_excludes_service_follow_up),
                             (MEMBERS_CHECK, segment_checks.members_exist_in_contact_features)):
                passed, details = fn(wh, day)
                checks.append(dg.AssetCheckResult(check_name=name, passed=passed, metadata=details))
            days.append(DayResult(partition, checks=checks, metadata={
                "dagster/partition_row_count": result.members.height,
                **{f"members/{s}": int(counts.get(s, 0)) for s in SEGMENTS},
                **{f"excluded/{k}": v for k, v in result.excluded.items()},
            }))
        yield from report(context, MEMBERSHIP_KEY, days)

    return [_features, _membership]


_SOURCES = {"data_extension": "the engagement data extension", "events": "Marketing Cloud's tracking events",
            "both": "tracking events, and the data extension's other actions"}


def _engagement(store: ParquetLake, rules: SegmentRules, engagement: DataExtensionConfig | None,
                events: list[EventType], day: dt.date) -> pl.LazyFrame:
    """The engagement rows of the window ending with `day`, from the configured source."""
    days = _days(day, rules.engagement_window_days)
    de = store.scan_many(clean_key(engagement).path, days) if engagement is not None else None
    tracked = {e.name: store.scan_many(event_clean_key(e).path, days) for e in events}
    return engagement_rows(de, tracked, rules.engagement_source)


def _end(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc)


def _days(day: dt.date, n: int) -> list[str]:
    return [(day - dt.timedelta(days=i)).isoformat() for i in range(n - 1, -1, -1)]


_EMPTY = {
    "engagement": {"contact_key": pl.String, "action": pl.String, "sentiment": pl.String,
                   "event_at": pl.Datetime("us", "UTC")},
    "activities": {"contact_key": pl.String, "activity_kind": pl.String, "activity_at": pl.Datetime("us", "UTC")},
}


def _or_empty(frame: pl.LazyFrame | None, kind: str) -> pl.LazyFrame:
    return frame if frame is not None else pl.LazyFrame(schema=_EMPTY[kind])

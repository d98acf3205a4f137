"""Segment-ready tables: `segments/contact_features` and `segments/segment_membership`, one set per day.

Each day D is computed as of the end of UTC day D from the clean tables: the latest row of every
contact up to D (kept incrementally: `lib/contact_state.py`), engagement over the engagement window
ending with D (from the engagement data extension, tracking events or both: `segments.engagement_source`)
and activities over the activity window ending with D (time-window partition mappings
declare those upstream days). The rows of D are replaced in the warehouse, so a backfill or a re-run
leaves one set of rows per day.

Both tables are one step (a multi-asset, each table selectable alone): day D's membership follows from
day D's features in the same step, so a day that cannot be computed fails on its own instead of holding
back the other days of the range. A day whose upstream days are not all usable (never materialised, or
their latest materialisation failed) is not computed: it fails naming them (`inputs.py`).
"""

import datetime as dt
import time
from collections.abc import Iterator

import dagster as dg
import polars as pl

from sfmc_assets.defs.clean.assets import clean_key
from sfmc_assets.defs.events.assets import clean_key as event_clean_key
from sfmc_assets.defs.metadata import table_schema
from sfmc_assets.defs.partitions import daily_partitions
from sfmc_assets.defs.ranges import DOWNSTREAM_BACKFILL_POLICY, DayResult, report_assets, unusable_days
from sfmc_assets.defs.segments.inputs import SegmentInputs
from sfmc_assets.lib import segment_checks
from sfmc_assets.lib.config import ProjectConfig, SegmentRules
from sfmc_assets.lib.events import configured
from sfmc_assets.lib.segments import SEGMENTS, TABLE_SCHEMAS, features_from_totals, memberships
from sfmc_assets.lib.warehouse import DayTables
from sfmc_assets.resources import LakeResource, WarehouseResource

SEGMENTS_GROUP = "segments"
FEATURES_KEY = dg.AssetKey(["segments", "contact_features"])
MEMBERSHIP_KEY = dg.AssetKey(["segments", "segment_membership"])
EXCLUSIVE_CHECK = "promotion_excludes_service_follow_up"
MEMBERS_CHECK = "members_exist_in_contact_features"
INPUTS_CHECK = "inputs_complete"


def _window(days: int) -> dg.TimeWindowPartitionMapping:
    return dg.TimeWindowPartitionMapping(start_offset=-(days - 1), allow_nonexistent_upstream_partitions=True)


def _specs(config: ProjectConfig, rules: SegmentRules) -> list[dg.AssetSpec]:
    contacts, activities = config.data_extension(rules.contacts), config.data_extension(rules.activities)
    engagement = [event_clean_key(e) for e in configured(config)] if rules.engagement_source != "data_extension" else []
    if rules.engagement_source != "events":
        engagement.insert(0, clean_key(config.data_extension(rules.engagement)))
    common = {"group_name": SEGMENTS_GROUP, "owners": list(contacts.owners),
              "kinds": {"duckdb", "polars", "table"}, "tags": {"layer": "segments", "domain": "marketing"}}
    features = dg.AssetSpec(
        FEATURES_KEY,
        deps=[
            dg.AssetDep(clean_key(contacts)),
            *[dg.AssetDep(key, partition_mapping=_window(rules.engagement_window_days)) for key in engagement],
            dg.AssetDep(clean_key(activities), partition_mapping=_window(rules.activity_window_days)),
        ],
        description=(
            "One row per contact known at the end of the UTC day (its latest clean row up to that day), with "
            f"engagement counts over {rules.engagement_window_days} days (from {_SOURCES[rules.engagement_source]}) "
            "and activity counts over "
            f"{rules.activity_window_days} days ending with the day, last engagement/activity times, and "
            "whether it is eligible for audiences (opted in, valid e-mail) or why not (`not opted in`, "
            "`consent unknown` for an empty opt-in, `invalid email`)."
        ),
        metadata={"dagster/table_name": "segments.contact_features",
                  "dagster/column_schema": table_schema(TABLE_SCHEMAS["contact_features"])},
        **common,
    )
    membership = dg.AssetSpec(
        MEMBERSHIP_KEY,
        deps=[FEATURES_KEY],
        description=(
            "One row per (as_of_date, segment, contact): who belongs to which audience that day, the reason and "
            "the evidence counts. Segments: welcome_offer, loyalty_reward, reengagement (lifecycle); promotion, "
            "service_follow_up (engagement); browse_reminder, form_follow_up (activities). Only eligible "
            "contacts are members; excluded candidates are counted per segment and reason in the metadata."
        ),
        metadata={"dagster/table_name": "segments.segment_membership",
                  "dagster/column_schema": table_schema(TABLE_SCHEMAS["segment_membership"])},
        **common,
    )
    return [features, membership]


_SOURCES = {"data_extension": "the engagement data extension", "events": "Marketing Cloud's tracking events",
            "both": "tracking events, and the data extension's other actions"}


def _check_specs(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(INPUTS_CHECK, asset=FEATURES_KEY, partitions_def=partitions_def,
                          description="Every upstream day the day's features need (contacts up to the day, the "
                                      "engagement and activity windows) was in the lake when read, and none "
                                      "was rewritten before the day was written."),
        dg.AssetCheckSpec(EXCLUSIVE_CHECK, asset=MEMBERSHIP_KEY, partitions_def=partitions_def,
                          description="No contact is in promotion and service_follow_up on the same day."),
        dg.AssetCheckSpec(MEMBERS_CHECK, asset=MEMBERSHIP_KEY, partitions_def=partitions_def,
                          description="Every member exists in contact_features for that day."),
    ]


def build_segment_assets(config: ProjectConfig) -> list[dg.AssetsDefinition]:
    rules = config.segments
    if rules is None:
        return []
    roles = ["contacts", "activities"] + (["engagement"] if rules.engagement_source != "events" else [])
    partitions_def = daily_partitions(max(config.start_date_of(config.data_extension(getattr(rules, role)))
                                          for role in roles))

    @dg.multi_asset(
        name="segments",
        specs=_specs(config, rules),
        check_specs=_check_specs(partitions_def),
        partitions_def=partitions_def,
        backfill_policy=DOWNSTREAM_BACKFILL_POLICY,
        can_subset=True,
    )
    def _segments(
        context: dg.AssetExecutionContext, lake: LakeResource, warehouse: WarehouseResource
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        wh = warehouse.warehouse()
        days = [dt.date.fromisoformat(p) for p in context.partition_keys]
        selected = context.selected_asset_keys
        results: dict[dg.AssetKey, list[DayResult]] = {}
        if FEATURES_KEY in selected:
            inputs = SegmentInputs(context.instance, lake.lake(), config, rules)
            inputs.prepare(days)
            computed = [_features_day(day, inputs, wh) for day in days]
            results[FEATURES_KEY] = _with_inputs_check(computed, inputs.relisted())
        if MEMBERSHIP_KEY in selected:
            in_run = {r.partition: r for r in results.get(FEATURES_KEY, [])}
            stored = {} if in_run else unusable_days(context.instance, FEATURES_KEY, partitions_def,
                                                     context.partition_keys)
            results[MEMBERSHIP_KEY] = [_membership_day(day, in_run, stored, wh, rules) for day in days]
        yield from report_assets(context, results)

    return [_segments]


def _features_day(day: dt.date, inputs: SegmentInputs, wh: DayTables) -> tuple[DayResult, dict | None]:
    """Day `day` of contact_features, written; with the versions of what it read (None if not computed)."""
    partition = day.isoformat()
    missing = inputs.missing(day)
    if missing:
        return DayResult(partition, failure=(
            f"segments/contact_features {partition} needs upstream days that cannot be used: {missing}. Nothing "
            "was written for this day; materialise those days (or include them in the backfill), then re-run it."
        )), None
    started = time.monotonic()
    features = features_from_totals(inputs.contacts(day), inputs.window_totals("engagement", day),
                                    inputs.window_totals("activities", day), day)
    wh.replace_days("contact_features", features, [day])
    excluded = features.filter(~pl.col("eligible")).group_by("exclusion_reason").len()
    return DayResult(partition, metadata={
        "dagster/partition_row_count": features.height,
        "eligible_contacts": int(features["eligible"].sum()),
        **{f"excluded/{r}": n for r, n in excluded.iter_rows()},
        "engagement_days_read": inputs.window_days("engagement"),
        "duration_s": round(time.monotonic() - started, 3),
    }), inputs.read_versions(day)


def _with_inputs_check(computed: list[tuple[DayResult, dict | None]], now: SegmentInputs) -> list[DayResult]:
    """Each computed day with its `inputs_complete` result, against the lake as listed after writing."""
    out = []
    for result, read in computed:
        if read is not None:
            passed, details = segment_checks.inputs_complete(read, now.read_versions(
                dt.date.fromisoformat(result.partition)))
            result.checks.append(dg.AssetCheckResult(
                check_name=INPUTS_CHECK, passed=passed, metadata=details,
                description="all upstream days read, none rewritten since" if passed else
                f"missing: {details['missing']}; rewritten since read: {details['changed_since_read']}"))
        out.append(result)
    return out


def _membership_day(day: dt.date, features_run: dict[str, DayResult], stored_unusable: dict[str, str],
                    wh: DayTables, rules: SegmentRules) -> DayResult:
    """Day `day` of segment_membership, from that day's contact_features as written (0 rows is a day too)."""
    partition = day.isoformat()
    upstream = features_run.get(partition)
    if upstream is not None and upstream.failure is not None:
        return DayResult(partition, failure=f"{MEMBERSHIP_KEY.to_user_string()} {partition} was not computed: "
                                            f"{FEATURES_KEY.to_user_string()} {partition} failed in this run")
    if partition in stored_unusable:
        return DayResult(partition, failure=f"{MEMBERSHIP_KEY.to_user_string()} {partition} was not computed: "
                                            f"{FEATURES_KEY.to_user_string()} {partition} cannot be used "
                                            f"({stored_unusable[partition]}); materialise it first")
    features = wh.query("SELECT * FROM segments.contact_features WHERE as_of_date = ?", [day])
    result = memberships(features, rules)
    wh.replace_days("segment_membership", result.members, [day])
    counts = dict(result.members.group_by("segment").len().iter_rows())
    checks = []
    for name, fn in ((EXCLUSIVE_CHECK, segment_checks.promotion_excludes_service_follow_up),
                     (MEMBERS_CHECK, segment_checks.members_exist_in_contact_features)):
        passed, details = fn(wh, day)
        checks.append(dg.AssetCheckResult(check_name=name, passed=passed, metadata=details))
    return DayResult(partition, checks=checks, metadata={
        "dagster/partition_row_count": result.members.height,
        "contacts": features.height,
        **{f"members/{s}": int(counts.get(s, 0)) for s in SEGMENTS},
        **{f"excluded/{k}": v for k, v in result.excluded.items()},
    })

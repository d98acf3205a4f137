"""`aep/events/<type>`: each day's clean tracking events published as ExperienceEvents.

All types go to one dataset (`tracking_events.aep.dataset`), one batch per type and day, labelled
`events/<type>/<day>` so a rerun replaces exactly that type's day (the batch-ingestion client finds the live
batches of a label and sends the new one as their replay). Records: `_id` from the event's natural key (a
re-sent event keeps its `_id`, so Profile drops it as a duplicate), `timestamp` = the event time,
`eventType` from XDM's direct-marketing types (`directMarketing.emailSent`, `...emailOpened`,
`...emailClicked`, `...emailBounced` / `...emailBouncedSoft`, `...emailUnsubscribed`), the subscriber key as
the primary identity, the tracking details under `<tenant>.emailTracking`.
"""

import time
from collections.abc import Iterator

import dagster as dg

from sfmc_assets.defs.events.assets import clean_key, common, partitions
from sfmc_assets.defs.experience_platform.assets import (
    AEP_POOL,
    PUBLISH_GROUP,
    RECONCILE_CHECK,
    dataset_metadata,
)
from sfmc_assets.defs.locks import PartitionBusyError, partition_lock
from sfmc_assets.defs.partitions import partitioned_check
from sfmc_assets.defs.ranges import DOWNSTREAM_BACKFILL_POLICY, DayResult, report
from sfmc_assets.lib.config import ProjectConfig
from sfmc_assets.lib.events import EventType, as_data_extension
from sfmc_assets.lib.experience_platform import (
    ExperiencePlatformClient,
    ExperiencePlatformError,
    XdmMappingError,
)
from sfmc_assets.lib.experience_platform.xdm import XdmMapping, to_parquet_bytes, to_xdm
from sfmc_assets.resources import ExperiencePlatformResource, LakeResource


def publish_key(event: EventType) -> dg.AssetKey:
    return dg.AssetKey(["aep", "events", event.name])


def label(event: EventType, partition: str) -> str:
    """What a batch holds: the event type and the day; replays find their predecessors by it."""
    return f"events/{event.name}/{partition}"


def build_publish_asset(event: EventType, config: ProjectConfig) -> dg.AssetsDefinition | None:
    mapping = as_data_extension(event, config).aep
    if mapping is None:
        return None
    partitions_def = partitions(config)
    xdm_types = sorted(set(mapping.event_type.values.values())) if mapping.event_type else []

    @dg.asset(
        key=publish_key(event), deps=[clean_key(event)], group_name=PUBLISH_GROUP, kinds={"adobe", "parquet"},
        pool=AEP_POOL,
        check_specs=[partitioned_check(
            RECONCILE_CHECK, publish_key(event), partitions_def,
            description="Records Experience Platform accepted for the day's batch = the day's clean events.")],
        description=(f"The day's validated `{event.object_type}` events published to Experience Platform dataset "
                     f"`{mapping.dataset}` as ExperienceEvents ({', '.join(xdm_types)}), one batch per day "
                     "replacing the day's previous one."),
        metadata=dataset_metadata(mapping, clean_key(event)),
        # Downstream of the gate: its backfills run apart from the clean layer's (defs/ranges.py).
        **{**common(config, "publish"), "backfill_policy": DOWNSTREAM_BACKFILL_POLICY},  # type: ignore[arg-type]
    )
    def _publish(context: dg.AssetExecutionContext, experience_platform: ExperiencePlatformResource,
                 lake: LakeResource) -> Iterator[dg.MaterializeResult]:
        client = experience_platform.get_client(context.log)
        days = [_publish_day(p, event, mapping, client, experience_platform, lake, context)
                for p in context.partition_keys]
        yield from report(context, publish_key(event), days)

    return _publish


def _publish_day(partition: str, event: EventType, mapping: XdmMapping, client: ExperiencePlatformClient,
                 resource: ExperiencePlatformResource, lake: LakeResource,
                 context: dg.AssetExecutionContext) -> DayResult:
    started = time.monotonic()
    try:
        frame = lake.lake().read(clean_key(event).path, partition)
        records = to_xdm(frame, mapping)
        # One publish of a day at a time across runs (defs/locks.py): a concurrent one could miss this
        # one's batch and leave two live.
        with partition_lock(context.instance, f"{publish_key(event).to_user_string()}/{partition}",
                            timeout_s=2 * resource.batch_deadline_s + 60, log=context.log):
            result = client.publish(mapping.dataset, to_parquet_bytes(records), label=label(event, partition),
                                    deadline_s=resource.batch_deadline_s, poll_initial_s=resource.poll_initial_s)
    except (ExperiencePlatformError, XdmMappingError, FileNotFoundError, PartitionBusyError) as exc:
        return DayResult(partition, failure=f"Publishing {event.object_type} events of partition {partition} to "
                         f"dataset {mapping.dataset} failed: {exc}")
    check = dg.AssetCheckResult(
        check_name=RECONCILE_CHECK, passed=result.records_out == frame.height and result.records_failed == 0,
        metadata={"clean_rows": frame.height, "records_accepted": result.records_out,
                  "records_failed": result.records_failed, "batch_id": result.batch_id},
        description=f"{result.records_out} of {frame.height} clean events accepted in batch {result.batch_id}")
    return DayResult(partition, checks=[check], metadata={
        "dagster/partition_row_count": result.records_out, "batch_id": result.batch_id, "status": result.status,
        "records_in": result.records_in, "records_out": result.records_out,
        "records_failed": result.records_failed, "clean_rows": frame.height, "file_bytes": result.file_bytes,
        "replaced_batches": ", ".join(result.predecessors) or "none",
        "duration_s": round(time.monotonic() - started, 3)})

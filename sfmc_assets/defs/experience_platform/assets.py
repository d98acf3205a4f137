"""`aep/<name>`: each clean partition published to Experience Platform as one batch, in XDM shape.

A partition is one batch through the batch-ingestion protocol (create, upload, complete, wait for
Catalog's verdict), holding one Parquet file, or several when the day is over the small-file limit. Re-publishing a partition sends a replay batch whose predecessors are the live
batches of that partition (found by the batch's label tag), so the dataset never holds a day twice.
The asset depends on the clean asset, so a day that failed its gate is never published; the XDM mapping
lives in the configuration and shows in the UI as column lineage.
"""

import time
from collections.abc import Iterator

import dagster as dg

from sfmc_assets.defs.clean.assets import clean_key
from sfmc_assets.defs.locks import PartitionBusyError, partition_lock
from sfmc_assets.defs.partitions import frequency_tags, partitioned_check, partitions_of
from sfmc_assets.defs.ranges import DayResult, report
from sfmc_assets.lib.config import DataExtensionConfig, ProjectConfig
from sfmc_assets.lib.experience_platform import (
    ExperiencePlatformClient,
    ExperiencePlatformError,
    XdmMappingError,
)
from sfmc_assets.lib.experience_platform.xdm import XdmMapping, column_lineage, to_parquet_files, to_xdm
from sfmc_assets.lib.personal import for_publishing
from sfmc_assets.resources import ExperiencePlatformResource, LakeResource

PUBLISH_GROUP = "aep_publish"
RECONCILE_CHECK = "reconciles_with_clean"
AEP_POOL = "aep_api"


def publish_key(de: DataExtensionConfig) -> dg.AssetKey:
    return dg.AssetKey(["aep", de.name])


def _lineage(de: DataExtensionConfig, mapping: XdmMapping) -> dg.TableColumnLineage:
    upstream = clean_key(de)
    return dg.TableColumnLineage(deps_by_column={
        path: [dg.TableColumnDep(asset_key=upstream, column_name=c) for c in columns]
        for path, columns in column_lineage(mapping).items()
    })


def label(de: DataExtensionConfig, partition: str) -> str:
    """What a batch holds: the data extension and the day; replays find their predecessors by it."""
    return f"{de.name}/{partition}"


def build_publish_asset(de: DataExtensionConfig, config: ProjectConfig) -> dg.AssetsDefinition | None:
    mapping = de.aep
    if mapping is None:
        return None
    xdm_class = "Individual Profile" if mapping.xdm_class == "profile" else "ExperienceEvent"
    partitions_def = partitions_of(de, config)

    @dg.asset(
        key=publish_key(de),
        deps=[clean_key(de)],
        partitions_def=partitions_def,
        group_name=PUBLISH_GROUP,
        check_specs=[partitioned_check(
            RECONCILE_CHECK, publish_key(de), partitions_def,
            description="Records Experience Platform accepted for the day's batch = the day's clean rows; none failed.",
        )],
        kinds={"adobe", "parquet"},
        owners=list(de.owners),
        tags={"layer": "publish", "domain": "marketing", "sfmc/kind": de.kind or "generic",
              **frequency_tags(de)},
        description=(
            f"The validated `{de.name}` partition published to Experience Platform dataset `{mapping.dataset}` "
            f"as {xdm_class} records: one batch per day, replacing the day's previous batch."
        ),
        metadata={
            "aep/dataset": mapping.dataset,
            "aep/xdm_class": mapping.xdm_class,
            "dagster/column_lineage": _lineage(de, mapping),
            "dagster/column_schema": dg.TableSchema(columns=[
                dg.TableColumn(name=path, type="xdm", description=f"from {', '.join(cols)}")
                for path, cols in column_lineage(mapping).items()
            ]),
        },
        pool=AEP_POOL,
        backfill_policy=dg.BackfillPolicy.single_run(),
    )
    def _publish(
        context: dg.AssetExecutionContext, experience_platform: ExperiencePlatformResource, lake: LakeResource
    ) -> Iterator[dg.MaterializeResult]:
        client = experience_platform.get_client(context.log)
        days = [_publish_day(p, de, mapping, client, experience_platform, lake, context)
                for p in context.partition_keys]
        yield from report(context, publish_key(de), days)

    return _publish


def _publish_day(
    partition: str,
    de: DataExtensionConfig,
    mapping: XdmMapping,
    client: ExperiencePlatformClient,
    resource: ExperiencePlatformResource,
    lake: LakeResource,
    context: dg.AssetExecutionContext,
) -> DayResult:
    started = time.monotonic()
    try:
        frame = lake.lake().read(clean_key(de).path, partition)
        records = to_xdm(for_publishing(frame, de), mapping)  # `privacy.hash` columns leave as SHA-256
        # One publish of a day at a time across runs (see defs/locks.py): a concurrent one could miss
        # this one's batch and leave two live. Waits at most for one other publish to settle.
        with partition_lock(context.instance, f"{publish_key(de).to_user_string()}/{partition}",
                            timeout_s=2 * resource.batch_deadline_s + 60, log=context.log):
            result = client.publish(
                mapping.dataset, to_parquet_files(records, client.max_file_bytes), label=label(de, partition),
                deadline_s=resource.batch_deadline_s, poll_initial_s=resource.poll_initial_s,
            )
    except (ExperiencePlatformError, XdmMappingError, FileNotFoundError, PartitionBusyError) as exc:
        return DayResult(partition, failure=(
            f"Publishing {de.name} (data extension {de.external_key}) partition {partition} to dataset "
            f"{mapping.dataset} failed: {exc}"
        ))
    check = dg.AssetCheckResult(
        check_name=RECONCILE_CHECK, passed=result.records_out == frame.height and result.records_failed == 0,
        metadata={"clean_rows": frame.height, "records_accepted": result.records_out,
                  "records_failed": result.records_failed, "batch_id": result.batch_id},
        description=f"{result.records_out} of {frame.height} clean rows accepted in batch {result.batch_id}",
    )
    return DayResult(partition, checks=[check], metadata={
        "dagster/partition_row_count": result.records_out,
        "batch_id": result.batch_id,
        "status": result.status,
        "records_in": result.records_in,
        "records_out": result.records_out,
        "records_failed": result.records_failed,
        "clean_rows": frame.height,
        "file_bytes": result.file_bytes,
        "files": result.files,
        "replaced_batches": ", ".join(result.predecessors) or "none",
        "duration_s": round(time.monotonic() - started, 3),
    })

"""`aep/<name>`: each clean partition published to Experience Platform as one batch, in XDM shape.

A partition is one batch through the batch-ingestion protocol (create, upload, complete, wait for
Catalog's verdict), holding one Parquet file, or several when the day is over the small-file limit. Re-publishing a partition sends a replay batch whose predecessors are the live
batches of that partition (found by the batch's label tag), so the dataset never holds a day twice.
The asset depends on the clean asset, so a day that failed its gate is never published; the XDM mapping
lives in the configuration and shows in the UI as column lineage.

Platform processes each batch on its own, for minutes on a real org, so the days of a range are
published concurrently: up to `publish_concurrency` days in flight, batch creations paced to
`batches_per_minute`. Each day's XDM file is built one day at a time (memory stays that of one day) and
only its bytes wait while Platform works. A day with no clean rows publishes nothing (Platform refuses
empty files) unless it replaces earlier batches of that day, which an empty replay then retires.
"""

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dagster as dg

from sfmc_assets.defs.clean.assets import clean_key
from sfmc_assets.defs.locks import PartitionBusyError, partition_lock
from sfmc_assets.defs.partitions import frequency_tags, partitioned_check, partitions_of
from sfmc_assets.defs.ranges import DOWNSTREAM_BACKFILL_POLICY, DayResult, report, unusable_days
from sfmc_assets.lib.config import DataExtensionConfig, ProjectConfig
from sfmc_assets.lib.experience_platform import (
    ExperiencePlatformClient,
    ExperiencePlatformError,
    XdmMappingError,
)
from sfmc_assets.lib.experience_platform.client import PublishResult
from sfmc_assets.lib.experience_platform.xdm import XdmMapping, column_lineage, to_parquet_files, to_xdm
from sfmc_assets.lib.personal import for_publishing
from sfmc_assets.resources import ExperiencePlatformResource, LakeResource

PUBLISH_GROUP = "aep_publish"
RECONCILE_CHECK = "reconciles_with_clean"
AEP_POOL = "aep_api"


def publish_key(de: DataExtensionConfig) -> dg.AssetKey:
    return dg.AssetKey(["aep", de.name])


def dataset_metadata(mapping: XdmMapping, upstream: dg.AssetKey) -> dict[str, Any]:
    """The dataset, its XDM class, and per XDM path the clean columns it is filled from (schema and lineage).

    Every asset that publishes to Experience Platform carries it, so the catalog shows what each record holds.
    """
    paths = column_lineage(mapping)
    return {
        "aep/dataset": mapping.dataset,
        "aep/xdm_class": mapping.xdm_class,
        "dagster/column_lineage": dg.TableColumnLineage(deps_by_column={
            path: [dg.TableColumnDep(asset_key=upstream, column_name=c) for c in columns]
            for path, columns in paths.items()
        }),
        "dagster/column_schema": dg.TableSchema(columns=[
            dg.TableColumn(name=path, type="xdm", description=f"from {', '.join(columns)}")
            for path, columns in paths.items()
        ]),
    }


def label(de: DataExtensionConfig, partition: str) -> str:
    """What a batch holds: the data extension and the day; replays find their predecessors by it."""
    return f"{de.name}/{partition}"


def _asset_args(de: DataExtensionConfig, mapping: XdmMapping,
                partitions_def: dg.PartitionsDefinition) -> dict[str, Any]:
    """How `aep/<name>` shows in the UI: kinds, owners, tags, the dataset, column lineage and schema."""
    xdm_class = "Individual Profile" if mapping.xdm_class == "profile" else "ExperienceEvent"
    return {
        "key": publish_key(de),
        "deps": [clean_key(de)],
        "partitions_def": partitions_def,
        "group_name": PUBLISH_GROUP,
        "check_specs": [partitioned_check(
            RECONCILE_CHECK, publish_key(de), partitions_def,
            description="Records Experience Platform accepted for the day's batch = the day's clean rows; none failed.",
        )],
        "kinds": {"adobe", "parquet"},
        "owners": list(de.owners),
        "tags": {"layer": "publish", "domain": "marketing", "sfmc/kind": de.kind or "generic", **frequency_tags(de)},
        "description": (
            f"The validated `{de.name}` partition published to Experience Platform dataset `{mapping.dataset}` "
            f"as {xdm_class} records: one batch per day, replacing the day's previous batch."
        ),
        "metadata": dataset_metadata(mapping, clean_key(de)),
        "pool": AEP_POOL,
        "backfill_policy": DOWNSTREAM_BACKFILL_POLICY,
    }


def build_publish_asset(de: DataExtensionConfig, config: ProjectConfig) -> dg.AssetsDefinition | None:
    mapping = de.aep
    if mapping is None:
        return None
    partitions_def = partitions_of(de, config)

    @dg.asset(**_asset_args(de, mapping, partitions_def))
    def _publish(
        context: dg.AssetExecutionContext, experience_platform: ExperiencePlatformResource, lake: LakeResource
    ) -> Iterator[dg.MaterializeResult]:
        unusable = unusable_days(context.instance, clean_key(de), partitions_def, context.partition_keys)
        pace = _Pace(experience_platform.batches_per_minute)
        encoding = threading.Lock()  # one day's XDM file built at a time: memory stays that of one day
        clients = _ThreadClients(lambda: experience_platform.get_client(context.log))

        def one(partition: str) -> DayResult:
            if partition in unusable:
                return DayResult(partition, failure=(
                    f"Publishing {de.name} partition {partition}: {clean_key(de).to_user_string()} {partition} "
                    f"cannot be published ({unusable[partition]}); materialise it first"))
            return _publish_day(partition, de, mapping, clients.get(), experience_platform, lake, context,
                                encoding, pace)

        workers = min(experience_platform.publish_concurrency, len(context.partition_keys))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="publish") as pool:
            days = list(pool.map(one, context.partition_keys))
        yield from report(context, publish_key(de), days)

    return _publish


class _Pace:
    """At most `per_minute` starts a minute, spread evenly (Platform's batch-creation guardrail)."""

    def __init__(self, per_minute: float) -> None:
        self.interval = 60.0 / per_minute
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        time.sleep(max(0.0, start - now))


class _ThreadClients:
    """One client per worker thread: each has its own connection pool, so concurrent days never queue
    for a connection of a shared one (the clients are thread-safe; their pools are sized for one caller)."""

    def __init__(self, make: Callable[[], ExperiencePlatformClient]) -> None:
        self._make = make
        self._local = threading.local()

    def get(self) -> ExperiencePlatformClient:
        if not hasattr(self._local, "client"):
            self._local.client = self._make()
        return self._local.client


def _publish_day(
    partition: str,
    de: DataExtensionConfig,
    mapping: XdmMapping,
    client: ExperiencePlatformClient,
    resource: ExperiencePlatformResource,
    lake: LakeResource,
    context: dg.AssetExecutionContext,
    encoding: threading.Lock,
    pace: _Pace,
) -> DayResult:
    started = time.monotonic()
    try:
        with encoding:
            frame = lake.lake().read(clean_key(de).path, partition)
            clean_rows = frame.height
            payload = to_parquet_files(to_xdm(for_publishing(frame, de), mapping), client.max_file_bytes)
            del frame
        # One publish of a day at a time across runs (see defs/locks.py): a concurrent one could miss
        # this one's batch and leave two live. Waits at most for one other publish to settle.
        with partition_lock(context.instance, f"{publish_key(de).to_user_string()}/{partition}",
                            timeout_s=2 * resource.batch_deadline_s + 60, log=context.log):
            if clean_rows == 0 and not client.find_live_batches(mapping.dataset, label(de, partition)):
                return _nothing_to_publish(partition, mapping, started)
            pace.wait()
            result = client.publish(
                mapping.dataset, payload, label=label(de, partition),
                deadline_s=resource.batch_deadline_s, poll_initial_s=resource.poll_initial_s,
            )
    except (ExperiencePlatformError, XdmMappingError, FileNotFoundError, PartitionBusyError) as exc:
        return DayResult(partition, failure=(
            f"Publishing {de.name} (data extension {de.external_key}) partition {partition} to dataset "
            f"{mapping.dataset} failed: {exc}"
        ))
    return _published(partition, clean_rows, result, started)


def _published(partition: str, clean_rows: int, result: PublishResult, started: float) -> DayResult:
    """A published day: its reconciliation check and the batch's metadata."""
    check = dg.AssetCheckResult(
        check_name=RECONCILE_CHECK, passed=result.records_out == clean_rows and result.records_failed == 0,
        metadata={"clean_rows": clean_rows, "records_accepted": result.records_out,
                  "records_failed": result.records_failed, "batch_id": result.batch_id},
        description=f"{result.records_out} of {clean_rows} clean rows accepted in batch {result.batch_id}",
    )
    return DayResult(partition, checks=[check], metadata={
        "dagster/partition_row_count": result.records_out,
        "batch_id": result.batch_id,
        "status": result.status,
        "records_in": result.records_in,
        "records_out": result.records_out,
        "records_failed": result.records_failed,
        "clean_rows": clean_rows,
        "file_bytes": result.file_bytes,
        "files": result.files,
        "replaced_batches": ", ".join(result.predecessors) or "none",
        "duration_s": round(time.monotonic() - started, 3),
    })


def _nothing_to_publish(partition: str, mapping: XdmMapping, started: float) -> DayResult:
    """An empty day that never had a batch: valid, and nothing to send (Platform refuses empty files)."""
    check = dg.AssetCheckResult(
        check_name=RECONCILE_CHECK, passed=True,
        metadata={"clean_rows": 0, "records_accepted": 0, "records_failed": 0, "batch_id": "none"},
        description="no clean rows and no earlier batch for the day: nothing to publish",
    )
    return DayResult(partition, checks=[check], metadata={
        "dagster/partition_row_count": 0, "batch_id": "none", "status": "nothing to publish",
        "records_in": 0, "records_out": 0, "records_failed": 0, "clean_rows": 0,
        "aep/dataset": mapping.dataset, "duration_s": round(time.monotonic() - started, 3),
    })

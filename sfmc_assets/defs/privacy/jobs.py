"""Personal data in Dagster: `privacy_erasure` (launch it from the UI) and `privacy_retention` (daily).

Both record what they did on the assets they touched as observations, so a partition's history in the UI
says "erased: 3 rows (request ...)" or "deleted by retention": Dagster's open-source event log cannot
wipe a single partition's materialisations ("Partitioned asset wipe is not supported yet for this event
log storage"), so the partition keeps its last materialisation and the observation after it tells what
happened to its file since. Neither writes a personal value: request ids, counts and dates only.
"""

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence

import dagster as dg
from pydantic import Field

from sfmc_assets.lib.config import ProjectConfig
from sfmc_assets.lib.privacy import erasure, retention
from sfmc_assets.lib.privacy.journal import STATUS_DONE, all_requests
from sfmc_assets.lib.privacy.store import PrivacyStore
from sfmc_assets.resources import ExperiencePlatformResource, LakeResource, WarehouseResource

ERASURE_JOB = "privacy_erasure"
RETENTION_JOB = "privacy_retention"
RETENTION_CRON = "30 3 * * *"  # after the 02:00 daily run


class ErasureConfig(dg.Config):
    """Who to erase. Dagster keeps a run's configuration in its run history: keys typed here stay there
    (delete the run once its audit record is written), keys in a file (`from_file`) do not."""

    contact_keys: list[str] = Field(default=[], description="Contact keys (Marketing Cloud subscriber keys).")
    from_file: str | None = Field(default=None, description="A file (local path or URI) of keys, one a line.")
    regulation: str = Field(default="gdpr", description="Privacy Service regulation: gdpr, ccpa, ...")
    wait_s: float = Field(default=0.0, description="How long to wait for Experience Platform's deletion jobs.")


def observations(touched: erasure.Touched, what: str, metadata: dict[str, object]) -> Iterable[dg.AssetObservation]:
    """One observation per asset partition an erasure touched (`rows_erased` on it)."""
    for (asset, partition), rows in sorted(touched.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        yield dg.AssetObservation(asset_key=dg.AssetKey(asset.split("/")), partition=partition,
                                  description=what, metadata={**metadata, "rows_erased": rows})


def build_erasure_job(project: ProjectConfig) -> dg.JobDefinition:
    @dg.op(name="erase_contacts", tags={"domain": "privacy"})
    def _erase(context: dg.OpExecutionContext, config: ErasureConfig, lake: LakeResource,
               warehouse: WarehouseResource, experience_platform: ExperiencePlatformResource) -> None:
        keys = erasure.read_keys(config.contact_keys, [config.from_file] if config.from_file else [])
        targets = erasure.Targets(project, lake.lake(), warehouse.warehouse(),
                                  lambda: experience_platform.get_client(context.log), context.log)
        result = erasure.erase(keys, targets, regulation=config.regulation, wait_s=config.wait_s)
        summary = result.journal.summary()
        for event in observations(result.touched, f"Erased by privacy request {summary['request_id']}",
                                  {"privacy/request": summary["request_id"]}):
            context.log_event(event)
        context.log.info("erasure request %s: %s", summary["request_id"], json.dumps(summary))
        if summary["status"] != STATUS_DONE:
            raise dg.Failure(description=f"erasure request {summary['request_id']} is incomplete: "
                             + "; ".join(summary["problems"]), allow_retries=False)

    @dg.job(name=ERASURE_JOB, tags={"domain": "privacy"},
            description="Erase contacts from every store: the lake (raw, clean, quarantine, deletes), the "
            "warehouse, and Experience Platform (a Privacy Service deletion); adds them to the suppression "
            "list. Same as `sfmc-assets erase`; resumable with the same keys.")
    def _job() -> None:
        _erase()

    return _job


class RetentionConfig(dg.Config):
    as_of: str | None = Field(default=None, description="UTC date retention is computed for (default: today).")
    dry_run: bool = Field(default=False, description="List what would be deleted, delete nothing.")


def _by_asset(items: Sequence[retention.Expired]) -> dict[tuple[str, str], list[retention.Expired]]:
    grouped: dict[tuple[str, str], list[retention.Expired]] = defaultdict(list)
    for item in items:
        grouped[("/".join(item.location.asset_path), item.location.partition)].append(item)
    return grouped


def build_retention_job(project: ProjectConfig) -> dg.JobDefinition:
    @dg.op(name="apply_retention", tags={"domain": "privacy"})
    def _retention(context: dg.OpExecutionContext, config: RetentionConfig, lake: LakeResource) -> None:
        today = dt.date.fromisoformat(config.as_of) if config.as_of else dt.datetime.now(dt.timezone.utc).date()
        store = lake.lake()
        items = retention.expired(store, project, today)
        if not config.dry_run:
            retention.delete(store, items)
        verb = "would delete" if config.dry_run else "deleted"
        context.log.info("retention as of %s: %s %d partition file(s)", today, verb, len(items))
        if config.dry_run:
            return
        for (asset, partition), expired in sorted(_by_asset(items).items()):
            layers = ", ".join(i.location.layer for i in expired)
            settings = ", ".join(sorted({f"{i.setting} = {i.days}" for i in expired}))
            context.log_event(dg.AssetObservation(
                asset_key=dg.AssetKey(asset.split("/")), partition=partition,
                description=f"Deleted by retention ({settings}): the {layers} file(s) of {partition} are gone",
                metadata={"retention/deleted": layers, "retention/setting": settings,
                          "retention/as_of": today.isoformat()}))

    @dg.op(name="refresh_erasure_requests", tags={"domain": "privacy"})
    def _refresh(context: dg.OpExecutionContext, lake: LakeResource,
                 experience_platform: ExperiencePlatformResource) -> None:
        pending = [j for j in all_requests(PrivacyStore(lake.lake().base))
                   if j.step("experience_platform").get("status") == "submitted"]
        if not pending:
            return
        client = experience_platform.get_client(context.log)
        for journal in pending:
            status = erasure.refresh_privacy_jobs(client, journal)
            context.log.info("erasure request %s: Experience Platform deletion %s", journal.id, status)

    @dg.job(name=RETENTION_JOB, tags={"domain": "privacy"},
            description="Deletes raw and quarantine partitions past `privacy.retention_days` (clean ones past "
            "`clean_retention_days`) and refreshes the status of Experience Platform deletions.")
    def _job() -> None:
        _retention()
        _refresh()

    return _job


def build_retention_schedule(job: dg.JobDefinition) -> dg.ScheduleDefinition:
    @dg.schedule(name=f"{RETENTION_JOB}_schedule", job=job, cron_schedule=RETENTION_CRON,
                 execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING,
                 description=f"`{RETENTION_CRON}` (UTC): retention as of the tick's day.")
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        tick = context.scheduled_execution_time or dt.datetime.now(dt.timezone.utc)
        day = tick.astimezone(dt.timezone.utc).date().isoformat()
        return dg.RunRequest(run_key=day, run_config={"ops": {"apply_retention": {"config": {"as_of": day}}}})

    return _schedule


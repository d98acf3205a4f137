"""`sfmc-assets erase` and `sfmc-assets erasures`: erasure requests from the command line.

`erase` does what the `privacy_erasure` job does (lib/privacy/erasure.py), in this process, against the
stores the environment names (the same variables the Dagster resources read), then records on the
Dagster instance, when there is one, which asset partitions lost rows. Nothing personal is printed:
the summary names the request, the stores and row counts. Run it again with the same keys to resume
an interrupted request. The commands are registered on the `sfmc-assets` group in cli.py.
"""

import json
import logging
import os
import sys
from contextlib import ExitStack
from pathlib import Path

import click
import dagster as dg

from sfmc_assets.defs.privacy.jobs import observations
from sfmc_assets.lib import settings
from sfmc_assets.lib.config import load_config
from sfmc_assets.lib.privacy import erasure
from sfmc_assets.lib.privacy.journal import STATUS_DONE, all_requests
from sfmc_assets.lib.privacy.store import PrivacyStore
from sfmc_assets.resources import experience_platform_resource, lake_resource, warehouse_resource

log = logging.getLogger("sfmc_assets.privacy")


def _dagster_instance() -> dg.DagsterInstance | None:
    """The instance of `DAGSTER_HOME` (or of `make run`'s home), if there is one."""
    home = os.environ.get("DAGSTER_HOME") or str(settings.project_home() / "dagster_home")
    if not (Path(home) / "dagster.yaml").exists():
        return None
    return dg.DagsterInstance.from_config(home)


@click.command()
@click.option("--contact-key", "contact_keys", multiple=True, metavar="KEY",
              help="A contact key (Marketing Cloud subscriber key); repeat for several.")
@click.option("--from-file", "files", multiple=True, metavar="FILE",
              help="A file (path or URI) of contact keys, one per line; `#` starts a comment.")
@click.option("--regulation", default="gdpr", show_default=True, help="Privacy Service regulation.")
@click.option("--wait", "wait_s", type=float, default=0.0, metavar="SECONDS",
              help="Wait this long for Experience Platform's deletion jobs to complete.")
@click.option("--json", "as_json", is_flag=True, help="Print the audit record as JSON.")
def erase(contact_keys: tuple[str, ...], files: tuple[str, ...], regulation: str, wait_s: float,
          as_json: bool) -> None:
    """Erase contacts from the lake, the warehouse and Experience Platform.

    Every row of the given contacts goes from every store, Experience Platform's Privacy Service deletion
    is submitted, and later runs leave them out (suppression list). Resumable: run it again with the same
    keys after an interruption. Exits 1 when the request is incomplete or Adobe reports the job in error.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    keys = erasure.read_keys(contact_keys, files)
    if not keys:
        raise click.UsageError("give --contact-key or --from-file")
    with ExitStack() as stack:
        lake = stack.enter_context(lake_resource().process_config_and_initialize_cm())
        warehouse = stack.enter_context(warehouse_resource().process_config_and_initialize_cm())
        aep = stack.enter_context(experience_platform_resource().process_config_and_initialize_cm())
        targets = erasure.Targets(load_config(), lake.lake(), warehouse.warehouse(), lambda: aep.get_client(log), log)
        try:
            result = erasure.erase(keys, targets, regulation=regulation, wait_s=wait_s)
        except dg.Failure as exc:  # a service that cannot be reached: the request resumes on the next run
            raise click.ClickException(exc.description or str(exc)) from None
    summary = result.journal.summary()
    instance = _dagster_instance()
    if instance is not None:
        with instance:
            for event in observations(result.touched, f"Erased by privacy request {summary['request_id']}",
                                      {"privacy/request": summary["request_id"]}):
                instance.report_runless_asset_event(event)
    _print(summary, as_json=as_json)
    if summary["status"] != STATUS_DONE or summary["experience_platform"].get("status") == "error":
        sys.exit(1)


def _print(summary: dict, *, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    aep = summary["experience_platform"]
    click.echo(f"erasure request {summary['request_id']}: {summary['status']} ({summary['contacts']} contact(s))")
    for where, rows in summary["rows_erased"].items():
        click.echo(f"  {where}: {rows} row(s) erased")
    if aep:
        jobs = ", ".join(f"{j['job_id']} ({j['status']})" for j in aep.get("jobs", []))
        click.echo(f"  experience platform: {aep.get('status')}{': ' + jobs if jobs else ''}")
    for problem in summary["problems"]:
        click.echo(f"  problem: {problem}")


@click.command()
@click.option("--refresh", is_flag=True, help="Ask Experience Platform for the status of submitted deletions first.")
def erasures(refresh: bool) -> None:
    """List erasure requests (audit records) and their status."""
    with lake_resource().process_config_and_initialize_cm() as lake:
        requests = all_requests(PrivacyStore(lake.lake().base))
    pending = [j for j in requests if j.step("experience_platform").get("status") == "submitted"]
    if refresh and pending:
        with experience_platform_resource().process_config_and_initialize_cm() as aep:
            client = aep.get_client(log)
            for journal in pending:
                erasure.refresh_privacy_jobs(client, journal)
    for journal in sorted(requests, key=lambda j: j.doc["requested_at"]):
        _print(journal.summary(), as_json=False)
    if not requests:
        click.echo("no erasure request yet")

"""`sfmc-assets`: the command line (also `python -m sfmc_assets`).

`sfmc-assets discover` lists the account's data extensions, previews one, and writes configuration entries
for new ones (docs/discover.md). It connects with the same credentials and resource as the assets: the
real Marketing Cloud when `SFMC_CLIENT_ID` is set, else the local sandbox through its discovery file.
"""

import contextlib
import datetime as dt
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import polars as pl
from rich.console import Console
from rich.table import Table

from sfmc_assets import cli_privacy
from sfmc_assets.lib import discovery
from sfmc_assets.lib.config import ProjectConfig, load_config
from sfmc_assets.lib.config_entries import (
    appended_text,
    checked,
    entry_yaml,
    new_config_text,
    write_atomically,
)
from sfmc_assets.lib.marketing_cloud import MarketingCloudClient, MarketingCloudError
from sfmc_assets.lib.marketing_cloud.fields import FieldSpec

#: A person is waiting: retry transient failures for seconds, not for the five minutes a run may take.
CLI_RETRY = {"max_attempts": 4, "max_retry_s": 30.0, "backoff_initial_s": 0.5}
MAX_PREVIEW_ROWS = 2500
#: First partition of a configuration file written from scratch (a suggestion, marked as one in the file).
NEW_FILE_START = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=30)


@contextlib.contextmanager
def marketing_cloud() -> Iterator[MarketingCloudClient]:
    """A client from the assets' own resource (environment credentials, else the sandbox), closed after."""
    import dagster as dg

    from sfmc_assets.resources import MarketingCloudResource, marketing_cloud_resource

    configured = marketing_cloud_resource()
    settings = {name: getattr(configured, name) for name in MarketingCloudResource.model_fields}
    quick = MarketingCloudResource(**(settings | CLI_RETRY))
    try:
        with quick.process_config_and_initialize_cm() as resource:
            client = resource.get_client()
            try:
                yield client
            finally:
                client.close()
    except dg.Failure as failure:  # no credentials and no sandbox, or half the credentials
        raise click.ClickException(failure.description or str(failure)) from None


def _fail(exc: Exception, what: str) -> click.ClickException:
    hint = ""
    if isinstance(exc, MarketingCloudError) and exc.status == 400 and "customobjects" in (exc.request or ""):
        hint = " (Marketing Cloud may refuse an empty search: pass --search with part of the names you want)"
    return click.ClickException(f"{what} failed: {exc}{hint}")


def _utc_offset_hours(config_file: Path | None) -> float:
    """The account's server-time offset from the configuration in force (-06:00 when there is none)."""
    try:
        return load_config(config_file).source.offset.total_seconds() / 3600
    except (FileNotFoundError, ValueError):
        return -6.0


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """sfmc_assets: Marketing Cloud data extensions as Dagster assets."""


@main.command()
@click.argument("keys", nargs=-1)
@click.option("--search", "term", default="", show_default=True,
              help="Part of the names, keys or descriptions to list (Marketing Cloud searches; empty: all).")
@click.option("--preview", "preview_key", metavar="KEY", help="Print the first rows of this data extension.")
@click.option("--rows", type=click.IntRange(1, MAX_PREVIEW_ROWS), default=10, show_default=True,
              help="Rows --preview prints.")
@click.option("--write-config", "write", is_flag=True,
              help="Append configuration entries for the data extensions KEYS to --config.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Configuration file --write-config appends to (default: $SFMC_ASSETS_CONFIG; created if "
                   "missing).")
@click.option("--dataset", help="--write-config: Experience Platform dataset id to publish to (activates the "
                                "suggested XDM mapping).")
@click.option("--xdm-tenant", help="--write-config: your org's XDM tenant id (custom fields go under "
                                   "`_<tenant>`); needed with --dataset.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def discover(keys: tuple[str, ...], term: str, preview_key: str | None, rows: int, write: bool,
             config_file: Path | None, dataset: str | None, xdm_tenant: str | None, as_json: bool) -> None:
    """List the account's data extensions (or only KEYS), preview one, or write configuration entries.

    \b
    sfmc-assets discover                          every data extension, its fields and delta candidates
    sfmc-assets discover --preview KEY --rows 5   the first rows, typed, personal columns masked
    sfmc-assets discover --write-config KEY...    append entries for KEY... to the configuration file
    """
    if write:
        _write_config(keys, config_file, dataset, xdm_tenant)
    elif preview_key:
        _preview(preview_key, rows, as_json, config_file)
    else:
        _list(keys, term, as_json)


def _list(keys: tuple[str, ...], term: str, as_json: bool) -> None:
    with marketing_cloud() as client:
        try:
            found = [discovery.describe(client, k) for k in keys] if keys else discovery.describe_all(client, term)
        except MarketingCloudError as exc:
            raise _fail(exc, "Listing the data extensions") from None
    if as_json:
        click.echo(json.dumps([d.as_json() for d in found], indent=2, default=str))
        return
    console = Console(width=max(120, Console().width), highlight=False)
    console.print(_summary_table(found, term))
    for de in found:
        console.print(_fields_table(de))


def _summary_table(found: list[discovery.DiscoveredDataExtension], term: str) -> Table:
    title = f"{len(found)} data extension(s)" + (f" matching {term!r}" if term else "")
    table = Table(title=title, title_justify="left")
    for column in ("external key", "name", "rows", "sendable", "fields", "primary key", "delta candidates"):
        table.add_column(column)
    for de in found:
        s = de.summary
        table.add_row(s.key, s.name, "?" if s.row_count is None else f"{s.row_count:,}",
                      {True: "yes", False: "no", None: "?"}[s.sendable], str(len(de.fields)),
                      ", ".join(de.primary_key) or "(none)", ", ".join(de.delta_candidates) or "(none: sync: full)")
    return table


def _fields_table(de: discovery.DiscoveredDataExtension) -> Table:
    suggested, _ = discovery.suggest_delta(de.fields)
    table = Table(title=f"{de.key} ({de.summary.name})", title_justify="left")
    for column in ("field", "type", "length", "nullable", "primary key", "delta"):
        table.add_column(column)
    for f in de.fields:
        delta = "suggested" if f.name == suggested else ("candidate" if f.type == "Date" else "")
        table.add_row(f.name, f.type, _length(f), "yes" if f.is_nullable else "no",
                      "yes" if f.is_primary_key else "", delta)
    return table


def _length(f: FieldSpec) -> str:
    if f.scale is not None and f.type == "Decimal":
        return f"{f.length},{f.scale}"
    return "" if f.length is None else str(f.length)


def _preview(key: str, rows: int, as_json: bool, config_file: Path | None) -> None:
    with marketing_cloud() as client:
        try:
            de = discovery.describe(client, key)
            frame, count = discovery.first_rows(client, de, rows, _utc_offset_hours(config_file))
        except MarketingCloudError as exc:
            raise _fail(exc, f"Previewing {key}") from None
    shown = discovery.masked(frame, de.fields)
    personal = [c for c in discovery.personal_fields(de.fields) if c in frame.columns]
    if as_json:
        click.echo(json.dumps({"key": de.key, "count": count, "masked": personal,
                               "schema": {c: str(t) for c, t in shown.schema.items()},
                               "rows": shown.to_dicts()}, indent=2, default=str))
        return
    click.echo(f"{de.key}: first {shown.height} of {count:,} row(s), in primary-key order; "
               f"masked (personal): {', '.join(personal) or 'none'}")
    with pl.Config(tbl_rows=rows, tbl_cols=-1, tbl_width_chars=10_000, fmt_str_lengths=40,
                   tbl_hide_dataframe_shape=True):
        click.echo(str(shown))


def _config_target(config_file: Path | None) -> Path:
    if config_file is not None:
        return config_file
    if os.environ.get("SFMC_ASSETS_CONFIG"):
        return Path(os.environ["SFMC_ASSETS_CONFIG"]).expanduser()
    raise click.UsageError("--write-config needs --config FILE or SFMC_ASSETS_CONFIG (the bundled "
                           "configuration is never modified)")


def _write_config(keys: tuple[str, ...], config_file: Path | None, dataset: str | None,
                  xdm_tenant: str | None) -> None:
    if not keys:
        raise click.UsageError("--write-config needs the external key(s) of the data extension(s) to add")
    if dataset and not xdm_tenant:
        raise click.UsageError("--dataset needs --xdm-tenant (your org's tenant id: custom XDM fields go under "
                               "`_<tenant>`)")
    target = _config_target(config_file)
    old_text = target.read_text(encoding="utf-8") if target.exists() else None
    existing = load_config(target) if old_text is not None else None
    with marketing_cloud() as client:
        try:
            suggestions = _suggestions(client, keys, existing, dataset, xdm_tenant)
        except MarketingCloudError as exc:
            raise _fail(exc, "Describing the data extensions") from None
    names = [s.name for s in suggestions]
    if old_text is None:
        new_text = new_config_text([entry_yaml(s) for s in suggestions], NEW_FILE_START)
    else:
        try:
            new_text = appended_text(old_text, lambda dash: [entry_yaml(s, dash) for s in suggestions])
        except ValueError as exc:
            raise click.ClickException(f"cannot append to {target}: {exc}") from None
    _validate(old_text, new_text, names, target)
    write_atomically(target, new_text)
    for s in suggestions:
        how = f"incremental on {s.delta}" if s.delta else "sync: full"
        click.echo(f"added {s.name} ({s.de.key}, {how}, {len(s.de.fields)} fields"
                   + (f", kind {s.kind[0].name} suggested in comments" if s.kind else "")
                   + (", published" if s.aep_active else "") + f") to {target}")


def _suggestions(client: MarketingCloudClient, keys: tuple[str, ...], existing: ProjectConfig | None,
                 dataset: str | None, xdm_tenant: str | None) -> list[discovery.Suggestion]:
    configured = {d.external_key.lower(): d.name for d in existing.data_extensions} if existing else {}
    taken = set(configured.values())
    out = []
    for key in dict.fromkeys(keys):
        if key.lower() in configured:
            raise click.ClickException(f"{key} is already configured as {configured[key.lower()]!r}; nothing "
                                       "was written")
        de = discovery.describe(client, key)
        sample = discovery.first_rows(client, de, MAX_PREVIEW_ROWS)[0] if discovery.suggest_kind(
            de.fields, discovery.suggest_delta(de.fields)[0]) else None  # enum values to suggest
        suggestion = discovery.suggest(de, taken, sample=sample, dataset=dataset, xdm_tenant=xdm_tenant)
        taken.add(suggestion.name)
        out.append(suggestion)
    return out


def _validate(old_text: str | None, new_text: str, names: list[str], target: Path) -> None:
    """The file as it will be written loads, and its definitions build (what `dg check defs` does)."""
    from sfmc_assets.definitions import build_definitions

    try:
        config = checked(old_text, new_text, names)
        build_definitions(config)
    except Exception as exc:  # any reason the result would not load: report it, write nothing
        raise click.ClickException(f"the entries would not load, so {target} was not changed: {exc}") from None


# Personal data: `erase` and `erasures` (cli_privacy.py).
main.add_command(cli_privacy.erase)
main.add_command(cli_privacy.erasures)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

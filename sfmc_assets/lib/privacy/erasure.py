"""Erasing contacts from every store: the orchestration (`sfmc-assets erase` and the `privacy_erasure` job).

The order is what makes it safe to kill at any point and run again with the same keys:

1. suppress: the keys' hashes join the suppression list first, so a run that starts meanwhile already
   drops the contact's rows;
2. collect: the contact's rows are read once more for the e-mail addresses on them (matched from now
   on too) and the identities published to Experience Platform;
3. Experience Platform: the Privacy Service deletion is submitted (before the lake loses the identity
   values it needs); a resumed request adopts the jobs it already submitted;
4. lake: every partition holding the contact's rows is rewritten without them, one journal entry per
   partition;
5. warehouse: the rows are deleted from every segment table and the storage rewritten;
6. verify: every store is searched again (a write that raced the erasure is erased in turn), staged
   files are checked, and data extensions that cannot be matched by contact are scanned.

The journal (lib/privacy/journal.py) records each step; nothing personal is written anywhere.
"""

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import polars as pl
from upath import UPath

from sfmc_assets.lib.config import DataExtensionConfig, ProjectConfig
from sfmc_assets.lib.experience_platform import ExperiencePlatformClient
from sfmc_assets.lib.experience_platform import privacy as privacy_service
from sfmc_assets.lib.lake import ParquetLake
from sfmc_assets.lib.personal import contact_key_column, for_publishing, person_columns, sha256_hex
from sfmc_assets.lib.privacy import lake_erasure, warehouse_erasure
from sfmc_assets.lib.privacy.journal import STATUS_DONE, STATUS_INCOMPLETE, ErasureJournal
from sfmc_assets.lib.privacy.keys import load_hasher, normalise
from sfmc_assets.lib.privacy.matching import Matcher
from sfmc_assets.lib.privacy.store import PrivacyStore
from sfmc_assets.lib.privacy.suppression import rebuild
from sfmc_assets.lib.retrying import LogSink
from sfmc_assets.lib.warehouse import PostgresWarehouse, Warehouse

#: Verification passes: a write racing the erasure is erased by the next pass.
VERIFY_PASSES = 3
#: (asset key path, partition or None) -> rows erased: what the Dagster UI is told about.
Touched = Counter[tuple[str, str | None]]


@dataclass
class Targets:
    """The stores of one installation."""

    config: ProjectConfig
    lake: ParquetLake
    warehouse: Warehouse | PostgresWarehouse | None
    experience_platform: Callable[[], ExperiencePlatformClient] | None
    log: LogSink


@dataclass
class ErasureResult:
    journal: ErasureJournal
    touched: Touched = field(default_factory=Counter)


def read_keys(keys: Iterable[str], files: Iterable[str] = ()) -> list[str]:
    """Contact keys from the command line and from files (one per line, `#` comments), trimmed, unique."""
    out = list(keys)
    for name in files:
        with UPath(name).open("r", encoding="utf-8") as f:
            out += [line.split("#", 1)[0] for line in f]
    return list(dict.fromkeys(k.strip() for k in out if k.strip()))


def erase(keys: list[str], targets: Targets, *, regulation: str = "gdpr", wait_s: float = 0.0) -> ErasureResult:
    """Erase the contacts named by `keys` from every store (resumes an interrupted request for the same keys)."""
    if not keys:
        raise ValueError("no contact key to erase")
    store = PrivacyStore(targets.lake.base)
    hasher = load_hasher(store, create=True)
    assert hasher is not None
    journal = ErasureJournal.open(store, hasher, keys, regulation)
    targets.log.info("erasure request %s: %d contact(s), attempt %d", journal.id, len(keys), journal.doc["attempts"])
    matcher = Matcher(hasher, journal.needles)
    matcher.add_clear(keys)
    _suppress(store, journal)
    result = ErasureResult(journal)
    identities = _collect(targets, matcher, journal, keys)
    _suppress(store, journal)
    client = _experience_platform(targets, journal, identities, regulation)
    for _ in range(VERIFY_PASSES):
        found = _erase_lake(targets, matcher, journal, result.touched)
        found += _erase_warehouse(targets, matcher, journal, result.touched)
        if not found:
            break
    _verify(targets, matcher, journal)
    if client is not None:
        refresh_privacy_jobs(client, journal, wait_s)
    return result


def _suppress(store: PrivacyStore, journal: ErasureJournal) -> None:
    hasher = load_hasher(store, create=False)
    assert hasher is not None
    for _ in range(5):  # a concurrent erasure may rewrite the list from an older view: check ours are in
        if journal.needles <= rebuild(store, hasher):
            return
    raise RuntimeError(f"erasure request {journal.id}: could not add its contacts to the suppression list")


# -- collect -----------------------------------------------------------------------------------------


def _collect(targets: Targets, matcher: Matcher, journal: ErasureJournal, keys: list[str]) -> dict[str, list]:
    """E-mail addresses on the contacts' rows (matched from now on) and the identities published to
    Experience Platform, per contact key; recollected until the Privacy Service jobs are submitted."""
    aep = journal.step("experience_platform").get("status") in ("submitted", "complete", "error", "skipped")
    if aep and journal.step("collect").get("status") == STATUS_DONE:
        return {}
    store, config = targets.lake, targets.config
    emails: set[str] = set()
    for chain in lake_erasure.chains(config):
        for layer in ("raw", "clean"):
            rows = lake_erasure.rows_of(store, chain, matcher, layer)
            if rows is not None:
                emails |= _emails_in(rows, chain.de, lake_erasure.known_fields(store, chain))
    hashed = sha256_hex(pl.Series(sorted(emails), dtype=pl.String)).to_list() if emails else []
    journal.add_needles(matcher.add_clear([*emails, *hashed]))
    identities = _identities(targets, matcher, keys)
    journal.finish_step("collect", emails_found=len(emails))
    return identities


def _emails_in(rows: pl.DataFrame, de: DataExtensionConfig, fields: tuple) -> set[str]:
    key = contact_key_column(de)
    skip = {key, de.clean_name(key)} if key else set()
    columns = [c for c in person_columns(de, fields) if c in rows.columns and c not in skip]
    return {normalise(v) for c in columns for v in rows.get_column(c).drop_nulls().to_list() if normalise(v)}


def _identities(targets: Targets, matcher: Matcher, keys: list[str]) -> dict[str, list]:
    """Contact key -> [(namespace, value)] published for it (its key under the key's namespaces, always)."""
    by_key: dict[str, list] = {normalise(k): [] for k in keys}
    for chain in lake_erasure.chains(targets.config):
        de = chain.de
        mapping, key = de.aep, contact_key_column(de)
        if mapping is None or key is None:
            continue
        key_clean = de.clean_name(key)
        for ns, spec in mapping.identities.items():
            if spec.column == key_clean:
                for k in keys:
                    by_key[normalise(k)].append((ns, k.strip()))
        rows = lake_erasure.rows_of(targets.lake, chain, matcher, "clean")
        if rows is None or key_clean not in rows.columns:
            continue
        published = for_publishing(rows, de)
        for ns, spec in mapping.identities.items():
            if spec.column == key_clean or spec.column not in published.columns:
                continue
            for owner, value in published.select(key_clean, spec.column).drop_nulls().iter_rows():
                if normalise(owner) in by_key:
                    by_key[normalise(owner)].append((ns, str(value)))
    return by_key


# -- Experience Platform -----------------------------------------------------------------------------


def _experience_platform(targets: Targets, journal: ErasureJournal, identities: dict[str, list],
                         regulation: str) -> ExperiencePlatformClient | None:
    """Submit the Privacy Service deletion once (adopting jobs a killed attempt created); the client."""
    step = journal.step("experience_platform")
    if not any(de.aep for de in targets.config.data_extensions) or targets.experience_platform is None:
        step.update(status="skipped", reason="no data extension is published to Experience Platform"
                    if targets.experience_platform else "no Experience Platform connection was given")
        journal.save()
        return None
    client = targets.experience_platform()
    if step.get("status") not in (None, "pending", "submitting"):
        return client
    prefix = f"sfmc-{journal.id[:12]}"
    jobs = []
    if step.get("status") == "submitting":
        jobs = privacy_service.find_jobs(client, regulation, {f"{prefix}-{n}" for n in range(len(identities))})
    if not jobs:
        users = [entry for n, ids in enumerate(identities.values())
                 for entry in privacy_service.user_entries(f"{prefix}-{n}", ids)]
        if not users:
            step.update(status="skipped", reason="no identity of these contacts is published")
            journal.save()
            return None
        step["status"] = "submitting"  # a kill from here on may leave jobs Adobe created: adopted on resume
        journal.save()
        jobs = privacy_service.submit_deletion(client, users, regulation)
    step.update(status="submitted", jobs=[j.as_dict() for j in jobs], regulation=regulation)
    journal.save()
    targets.log.info("erasure request %s: Privacy Service job(s) %s submitted", journal.id,
                     ", ".join(j.job_id for j in jobs))
    return client


def refresh_privacy_jobs(client: ExperiencePlatformClient, journal: ErasureJournal, wait_s: float = 0.0) -> str:
    """Ask Adobe for the status of the request's jobs (for up to `wait_s` until all are final)."""
    step = journal.step("experience_platform")
    deadline = time.monotonic() + wait_s
    while True:
        jobs = step.get("jobs", [])
        for job in jobs:
            if job["status"] not in privacy_service.FINAL_STATUSES:
                job["status"] = privacy_service.job_status(client, job["job_id"])
        statuses = {j["status"] for j in jobs}
        done = statuses <= privacy_service.FINAL_STATUSES
        if done or time.monotonic() >= deadline:
            break
        time.sleep(min(2.0, max(0.05, deadline - time.monotonic())))
    step["status"] = ("error" if "error" in statuses else "complete") if jobs and done else step.get("status")
    journal.save()
    return str(step["status"])


# -- lake and warehouse ------------------------------------------------------------------------------


def _erase_lake(targets: Targets, matcher: Matcher, journal: ErasureJournal, touched: Touched) -> int:
    """Rewrite every partition holding the contacts' rows; returns the partitions rewritten now."""
    store = targets.lake
    seen: set[str] = set()
    for chain in lake_erasure.chains(targets.config):
        if not person_columns(chain.de, lake_erasure.known_fields(store, chain)):
            continue
        for loc, hits in list(lake_erasure.find(store, chain, matcher)):
            rows = _rewrite(store, journal, loc, hits, seen)
            _record(journal, touched, f"lake:{'/'.join(loc.key_path)}", "/".join(loc.asset_path), loc.partition, rows)
    for derived, hits in list(lake_erasure.derived_files(store, matcher)):  # state derived by other code
        journal.count(f"lake:{'/'.join(derived.key_path)}", _rewrite(store, journal, derived, hits, seen))
    _finish_pending(journal, touched, seen)
    journal.finish_step("lake")
    return len(seen)


def _rewrite(store: ParquetLake, journal: ErasureJournal, loc: lake_erasure.PartitionFile,
             hits: dict[str, list[str]], seen: set[str]) -> int:
    """One partition without the request's rows, journalled before (pending) and after (done)."""
    where = str(loc)
    seen.add(where)
    journal.partition_pending(where, lake_erasure.count(store, loc, hits))
    rows = lake_erasure.rewrite_without(store, loc, hits)
    journal.partition_done(where, rows)
    return rows


def _finish_pending(journal: ErasureJournal, touched: Touched, seen: set[str]) -> None:
    """Partitions a killed attempt left `pending` that hold no match now: the rewrite landed; count it."""
    for where, state in list(journal.step("lake").get("partitions", {}).items()):
        if state["state"] != "pending" or where in seen:
            continue
        journal.partition_done(where, state["rows"])
        *folder, partition = where.split("/")
        if folder[0] == "sfmc":
            asset = "/".join(["sfmc", dict(lake_erasure.LAYERS)[folder[1]], *folder[2:]])
            _record(journal, touched, f"lake:{'/'.join(folder)}", asset, partition, state["rows"])
        else:
            journal.count(f"lake:{'/'.join(folder)}", state["rows"])


def _record(journal: ErasureJournal, touched: Touched, where: str, asset: str, partition: str | None,
            rows: int) -> None:
    """Count rows erased from `where` (`lake:sfmc/quarantine/contacts`) on `asset`'s partition."""
    journal.count(where, rows)
    touched[(asset, partition)] += rows


def _erase_warehouse(targets: Targets, matcher: Matcher, journal: ErasureJournal, touched: Touched) -> int:
    wh = targets.warehouse
    if wh is None:
        return 0
    compact = journal.step("warehouse").get("status") != STATUS_DONE
    erased = warehouse_erasure.erase(wh, matcher, compact=compact)
    for (table, day), rows in sorted(erased.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        _record(journal, touched, f"warehouse:segments.{table}", f"segments/{table}",
                day.isoformat() if day else None, rows)
    journal.finish_step("warehouse")
    return len(erased)


def _verify(targets: Targets, matcher: Matcher, journal: ErasureJournal) -> None:
    """Search every store again; what is left is a problem the request reports (status `incomplete`)."""
    store, problems = targets.lake, []
    for chain in lake_erasure.chains(targets.config):
        if person_columns(chain.de, lake_erasure.known_fields(store, chain)):
            problems += [f"rows remain in {loc}" for loc, _ in lake_erasure.find(store, chain, matcher)]
        else:
            problems += [f"{where}: the contact's values are in a data extension without a contact key or e-mail "
                         f"column; set privacy.contact_key for {chain.de.name}"
                         for where in lake_erasure.unkeyed_hits(store, chain, matcher)]
    problems += [f"rows remain in {loc}" for loc, _ in lake_erasure.derived_files(store, matcher)]
    deleted, in_flight = lake_erasure.staged_files(store, matcher)
    problems += [f"a write in progress ({name}) holds the contact's rows: run the erasure again once it ends"
                 for name in in_flight]
    if targets.warehouse is not None:
        problems += [f"rows remain in {where}" for where in warehouse_erasure.remaining(targets.warehouse, matcher)]
    journal.finish_step("verify", staged_orphans_deleted=len(deleted), problems=len(problems))
    journal.close(STATUS_INCOMPLETE if problems else STATUS_DONE, problems=problems)

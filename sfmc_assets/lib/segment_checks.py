"""Checks of the segment tables, run as SQL on what was written (not on the frames that were meant to be).

Each returns `(passed, details)`; the asset turns them into Dagster check results. The SQL is the subset
DuckDB and PostgreSQL share, so the checks run on either warehouse backend.
"""

import datetime as dt

from sfmc_assets.lib.personal import mask_values
from sfmc_assets.lib.warehouse import SCHEMA, DayTables


def promotion_excludes_service_follow_up(warehouse: DayTables, day: dt.date) -> tuple[bool, dict[str, object]]:
    """No contact is in `promotion` and `service_follow_up` on the same day (a complaint is not a lead)."""
    both = warehouse.query(
        f"""SELECT contact_key FROM {SCHEMA}.segment_membership WHERE as_of_date = ? AND segment = 'promotion'
            INTERSECT
            SELECT contact_key FROM {SCHEMA}.segment_membership WHERE as_of_date = ? AND segment = 'service_follow_up'""",
        [day, day],
    )
    return both.height == 0, {"contacts_in_both": both.height, "sample": mask_values(both["contact_key"].head(5))}


def members_exist_in_contact_features(warehouse: DayTables, day: dt.date) -> tuple[bool, dict[str, object]]:
    """Every member of every segment is a row of `contact_features` for that day."""
    # The day is given to both sides: DuckDB does not carry `f.as_of_date = m.as_of_date` into the
    # subquery, so every day of contact_features was scanned for each day (a backfill quadratic in days).
    orphans = warehouse.query(
        f"""SELECT DISTINCT m.contact_key FROM {SCHEMA}.segment_membership m
            WHERE m.as_of_date = ? AND NOT EXISTS (
                SELECT 1 FROM {SCHEMA}.contact_features f
                WHERE f.as_of_date = ? AND f.contact_key = m.contact_key)""",
        [day, day],
    )
    return orphans.height == 0, {"orphan_members": orphans.height, "sample": mask_values(orphans["contact_key"].head(5))}


def inputs_complete(
    read: dict[str, dict[str, str | None]], now: dict[str, dict[str, str | None]]
) -> tuple[bool, dict[str, object]]:
    """Every upstream day a day's features needed was there when read, and none was rewritten since.

    `read` is what the step read per input (`day -> file version`, None when the file was missing; the
    contacts as one `fingerprint` of all their days); `now` the same, listed again after the day was
    written. This is evidence from the lake, independent of the Dagster statuses the step checked
    before computing: it catches a partition whose file is gone although Dagster lists it as
    materialised, and a partition rewritten while the features were being computed.
    """
    missing = {name: sorted(d for d, v in days.items() if v is None) for name, days in read.items()}
    changed = {name: sorted(d for d, v in days.items() if v is not None and now.get(name, {}).get(d) != v)
               for name, days in read.items()}
    missing = {k: v for k, v in missing.items() if v}
    changed = {k: v for k, v in changed.items() if v}
    details: dict[str, object] = {
        "days_read": {name: len(days) for name, days in read.items()},
        "missing": missing or "none",
        "changed_since_read": changed or "none",
    }
    return not missing and not changed, details

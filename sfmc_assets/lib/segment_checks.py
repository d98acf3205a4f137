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
    orphans = warehouse.query(
        f"""SELECT DISTINCT m.contact_key FROM {SCHEMA}.segment_membership m
            WHERE m.as_of_date = ? AND NOT EXISTS (
                SELECT 1 FROM {SCHEMA}.contact_features f
                WHERE f.contact_key = m.contact_key AND f.as_of_date = m.as_of_date)""",
        [day],
    )
    return orphans.height == 0, {"orphan_members": orphans.height, "sample": mask_values(orphans["contact_key"].head(5))}

"""Segment tables against an independent computation: plain SQL over the sandbox's raw rows in DuckDB.

The expected membership is computed here from Marketing Cloud's ground truth (the sandbox's own rows,
not the extracted files), in SQL written for this test, not with the project's Polars code.
"""

import datetime as dt
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from sfmc_assets.defs.segments.assets import FEATURES_KEY, MEMBERSHIP_KEY
from sfmc_assets.lib.config import ProjectConfig
from sfmc_assets.lib.warehouse import Warehouse
from sfmc_assets.sandboxes.marketing_cloud import MarketingCloudSandbox
from sfmc_assets_tests.conftest import DATA_END, DATA_START
from sfmc_assets_tests.defs.conftest import definitions_for, resources_for
from sfmc_assets_tests.instances import memory_instance

UTC = dt.timezone.utc
RANGE = ("2026-10-01", "2026-10-07")
CHECK_DAYS = ["2026-10-04", "2026-10-05", "2026-10-07"]

EXPECTED_SQL = """
WITH params AS (SELECT CAST(? AS DATE) AS d),
bounds AS (SELECT d, (d + 1)::TIMESTAMPTZ AS day_end FROM params),
latest AS (
  SELECT c.* FROM contacts c, bounds b WHERE c.ModifiedDate < b.day_end
  QUALIFY row_number() OVER (PARTITION BY SubscriberKey ORDER BY ModifiedDate DESC) = 1
),
people AS (
  SELECT SubscriberKey AS contact_key,
         CASE CustomerStage WHEN 'New' THEN 'new' WHEN 'Returning' THEN 'repeat' WHEN 'Loyal' THEN 'loyal'
                            WHEN 'Lapsed' THEN 'inactive' END AS stage,
         OptIn AND regexp_matches(lower(trim(EmailAddress)), '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$') AS eligible
  FROM latest
),
eng AS (
  SELECT e.SubscriberKey AS contact_key,
         count(*) FILTER (WHERE EventName = 'Clicked') AS clicks,
         count(*) FILTER (WHERE EventName = 'Replied' AND ResponseSentiment = 'Positive') AS pos,
         count(*) FILTER (WHERE EventName = 'Replied' AND ResponseSentiment = 'Negative') AS neg
  FROM engagement e, bounds b
  WHERE e.EventDate >= b.day_end - INTERVAL 30 DAY AND e.EventDate < b.day_end GROUP BY 1
),
act AS (
  SELECT a.SubscriberKey AS contact_key,
         count(*) FILTER (WHERE ActivityType = 'PageView') AS page_views,
         count(*) FILTER (WHERE ActivityType = 'FormSubmit') AS forms,
         count(*) FILTER (WHERE ActivityType = 'Purchase') AS buys
  FROM activities a, bounds b
  WHERE a.ActivityDate >= b.day_end - INTERVAL 7 DAY AND a.ActivityDate < b.day_end GROUP BY 1
),
joined AS (
  SELECT p.*, coalesce(clicks, 0) clicks, coalesce(pos, 0) pos, coalesce(neg, 0) neg,
         coalesce(page_views, 0) page_views, coalesce(forms, 0) forms, coalesce(buys, 0) buys
  FROM people p LEFT JOIN eng USING (contact_key) LEFT JOIN act USING (contact_key)
)
SELECT segment, contact_key FROM (
  SELECT 'welcome_offer' AS segment, contact_key, eligible FROM joined WHERE stage = 'new'
  UNION ALL SELECT 'loyalty_reward', contact_key, eligible FROM joined WHERE stage IN ('repeat', 'loyal')
  UNION ALL SELECT 'reengagement', contact_key, eligible FROM joined WHERE stage = 'inactive'
  UNION ALL SELECT 'promotion', contact_key, eligible FROM joined WHERE (clicks > 0 OR pos > 0) AND neg = 0
  UNION ALL SELECT 'service_follow_up', contact_key, eligible FROM joined WHERE neg > 0
  UNION ALL SELECT 'browse_reminder', contact_key, eligible FROM joined WHERE page_views > 0 AND buys = 0
  UNION ALL SELECT 'form_follow_up', contact_key, eligible FROM joined WHERE forms > 0
) WHERE eligible ORDER BY segment, contact_key
"""


def _expected(contacts_history: pl.DataFrame, sandbox: MarketingCloudSandbox, day: str) -> pl.DataFrame:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # Only the days the pipeline extracted exist for it: restrict the ground truth to them as well.
    first, end = dt.datetime(2026, 10, 1, tzinfo=UTC), dt.datetime(2026, 10, 8, tzinfo=UTC)
    tables = {"contacts": contacts_history.filter(pl.col("ModifiedDate").is_between(first, end, closed="left")),
              "engagement": sandbox.ground_truth("Campaign_Engagement", first, end),
              "activities": sandbox.ground_truth("Web_Activities", first, end)}
    for name, frame in tables.items():  # noqa: B007 - `frame` is read by DuckDB's replacement scan
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
    return con.execute(EXPECTED_SQL, [day]).pl()


def _run(defs: dg.Definitions, resources: dict, instance: dg.DagsterInstance, first: str, last: str) -> None:
    result = dg.materialize(
        list(defs.assets or []), resources=resources, instance=instance, raise_on_error=False,
        selection=dg.AssetSelection.all() - dg.AssetSelection.groups("aep_publish"),  # not needed here
        tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
    )
    assert result.success


@pytest.fixture(scope="module")
def segmented(tmp_path_factory: pytest.TempPathFactory, config: ProjectConfig):
    """Days 10-01..10-04 run; then a contact changes stage and one unsubscribes; then 10-05..10-07 run.

    Events sit exactly on window edges. Returns what the tests need, plus the contacts' history as the
    pipeline could have seen it (the rows before and after the changes).
    """
    tmp_path = tmp_path_factory.mktemp("segments")
    sb = MarketingCloudSandbox(tmp_path / "mc", start=DATA_START, end=DATA_END,
                               rows={"Contacts_DE": 300, "Campaign_Engagement": 2000, "Web_Activities": 2000}).start()
    t = dt.datetime
    early = sb.ground_truth("Contacts_DE").filter(pl.col("OptIn") & (pl.col("ModifiedDate") < t(2026, 10, 4, tzinfo=UTC)))
    changer = early.filter(pl.col("CustomerStage") == "New")["SubscriberKey"][0]
    quitter = early.filter(pl.col("CustomerStage") == "Loyal")["SubscriberKey"][0]
    sb.upsert_rows("Web_Activities", [  # edges of the 7-day window of 2026-10-07: [10-01 00:00, 10-08 00:00)
        {"ActivityID": "EDGE-IN", "SubscriberKey": quitter, "ActivityType": "FormSubmit",
         "ActivityDate": t(2026, 10, 1, 0, 0, tzinfo=UTC)},
        {"ActivityID": "EDGE-OUT", "SubscriberKey": changer, "ActivityType": "FormSubmit",
         "ActivityDate": t(2026, 9, 30, 23, 59, 59, tzinfo=UTC)},
    ])
    sb.upsert_rows("Campaign_Engagement", [  # exactly the end of 10-04: counts for 10-05, not 10-04
        {"EngagementID": "EDGE-CLICK", "SubscriberKey": changer, "CampaignID": "CMP-001", "CampaignName": "Edge",
         "Channel": "Email", "EventName": "Clicked", "EventDate": t(2026, 10, 5, 0, 0, tzinfo=UTC)},
    ])
    defs = definitions_for(config)
    resources = resources_for(sb, tmp_path)
    with memory_instance() as instance:
        _run(defs, resources, instance, RANGE[0], "2026-10-04")
        before = sb.ground_truth("Contacts_DE")
        row = before.filter(SubscriberKey=changer).row(0, named=True)
        sb.upsert_rows("Contacts_DE", [{**row, "CustomerStage": "Loyal", "TotalOrders": 6,
                                        "ModifiedDate": t(2026, 10, 5, 10, tzinfo=UTC)}])
        row = before.filter(SubscriberKey=quitter).row(0, named=True)
        sb.upsert_rows("Contacts_DE", [{**row, "OptIn": False, "ModifiedDate": t(2026, 10, 5, 12, tzinfo=UTC)}])
        _run(defs, resources, instance, "2026-10-05", RANGE[1])
        history = pl.concat([before, sb.ground_truth("Contacts_DE")]).unique()
        yield {"sandbox": sb, "warehouse": Warehouse(tmp_path / "warehouse.duckdb"), "instance": instance,
               "defs": defs, "resources": resources, "history": history, "changer": changer, "quitter": quitter}
    sb.stop()


def test_membership_equals_independent_sql(segmented) -> None:
    wh = segmented["warehouse"]
    graph = segmented["defs"].resolve_asset_graph()
    for key in (FEATURES_KEY, MEMBERSHIP_KEY):  # the catalog's column schema is what the table holds
        declared = [c.name for c in graph.get(key).metadata["dagster/column_schema"].columns]
        assert wh.query(f"SELECT * FROM segments.{key.path[-1]} LIMIT 0").columns == declared, key
    for day in CHECK_DAYS:
        got = wh.query("SELECT segment, contact_key FROM segments.segment_membership WHERE as_of_date = ? "
                       "ORDER BY segment, contact_key", [dt.date.fromisoformat(day)])
        expected = _expected(segmented["history"], segmented["sandbox"], day)
        assert got.height > 0
        assert got.equals(expected), (day, got.join(expected, on=["segment", "contact_key"], how="anti").head(),
                                      expected.join(got, on=["segment", "contact_key"], how="anti").head())


def test_stage_change_and_unsubscribe_take_effect_on_their_day(segmented) -> None:
    wh, changer, quitter = segmented["warehouse"], segmented["changer"], segmented["quitter"]

    def segments_of(key: str) -> dict[str, set[str]]:
        rows = wh.query("SELECT as_of_date, segment FROM segments.segment_membership WHERE contact_key = ?", [key])
        out: dict[str, set[str]] = {}
        for day, segment in rows.iter_rows():
            out.setdefault(day.isoformat(), set()).add(segment)
        return out

    changed = segments_of(changer)
    assert "welcome_offer" in changed["2026-10-04"] and "loyalty_reward" not in changed["2026-10-04"]
    assert "loyalty_reward" in changed["2026-10-05"] and "welcome_offer" not in changed["2026-10-05"]
    quit_ = segments_of(quitter)
    assert "loyalty_reward" in quit_["2026-10-04"] and "2026-10-05" not in quit_
    excluded = wh.query("SELECT exclusion_reason FROM segments.contact_features WHERE contact_key = ? "
                        "AND as_of_date = DATE '2026-10-05'", [quitter])
    assert excluded["exclusion_reason"].to_list() == ["not opted in"]


def test_a_rerun_and_a_backfill_leave_one_set_of_rows_per_day(segmented) -> None:
    wh, instance, defs, resources = (segmented[k] for k in ("warehouse", "instance", "defs", "resources"))
    before = wh.query("SELECT as_of_date, count(*) n FROM segments.segment_membership GROUP BY 1 ORDER BY 1")
    rerun = dg.materialize(list(defs.assets or []), resources=resources, instance=instance,
                           partition_key="2026-10-05", selection=dg.AssetSelection.groups("segments"))
    assert rerun.success
    ranged = dg.materialize(
        list(defs.assets or []), resources=resources, instance=instance, selection=dg.AssetSelection.groups("segments"),
        tags={"dagster/asset_partition_range_start": "2026-10-03", "dagster/asset_partition_range_end": "2026-10-06"},
    )
    assert ranged.success
    after = wh.query("SELECT as_of_date, count(*) n FROM segments.segment_membership GROUP BY 1 ORDER BY 1")
    assert after.equals(before)
    dupes = wh.query("SELECT as_of_date, segment, contact_key, count(*) FROM segments.segment_membership "
                     "GROUP BY ALL HAVING count(*) > 1")
    assert dupes.is_empty()


def test_segment_checks_and_counts_per_day(segmented) -> None:
    instance = segmented["instance"]
    key = dg.AssetKey(["segments", "segment_membership"])
    for check in ("promotion_excludes_service_follow_up", "members_exist_in_contact_features"):
        records = instance.event_log_storage.get_asset_check_execution_history(dg.AssetCheckKey(key, check), limit=50)
        by_day = {r.event.asset_check_evaluation.partition: r.status.value for r in records
                  if r.event and r.event.asset_check_evaluation.partition}
        assert set(by_day) >= set(CHECK_DAYS) and set(by_day.values()) == {"SUCCEEDED"}
    event = instance.get_latest_materialization_event(key)
    md = event.asset_materialization.metadata
    assert event.asset_materialization.partition in [*CHECK_DAYS, "2026-10-06"]  # a day, not the range
    assert all(f"members/{s}" in md for s in ("promotion", "welcome_offer", "browse_reminder"))


def test_segment_checks_fail_on_a_violation(tmp_path: Path) -> None:
    from sfmc_assets.lib import segment_checks

    wh = Warehouse(tmp_path / "w.duckdb")
    day = dt.date(2026, 10, 5)
    wh.replace_days("contact_features", pl.DataFrame({"as_of_date": [day], "contact_key": ["A"]}), [day])
    wh.replace_days("segment_membership", pl.DataFrame({
        "as_of_date": [day] * 3, "segment": ["promotion", "service_follow_up", "promotion"],
        "contact_key": ["A", "A", "GHOST"]}), [day])
    passed, details = segment_checks.promotion_excludes_service_follow_up(wh, day)
    assert not passed and details["sample"] == ["A***"]  # contact keys are personal: masked in metadata
    passed, details = segment_checks.members_exist_in_contact_features(wh, day)
    assert not passed and details["sample"] == ["G***"]


def test_old_contacts_days_rerun_or_failed_reach_the_later_segment_days(
        fresh_mc_sandbox: MarketingCloudSandbox, tmp_path: Path, config: ProjectConfig) -> None:
    """The contacts as known on a later day are derived from the earlier days: re-materialising an old day
    changes the later days' segments (no stale state), and an old day whose latest attempt failed stops
    them, named, instead of being read as it was before."""
    sb, defs, resources = fresh_mc_sandbox, definitions_for(config), resources_for(fresh_mc_sandbox, tmp_path)
    wh = Warehouse(tmp_path / "warehouse.duckdb")
    t = dt.datetime
    with memory_instance() as instance:
        _run(defs, resources, instance, "2026-10-01", "2026-10-04")
        contacts = sb.ground_truth("Contacts_DE").filter(
            pl.col("OptIn") & (pl.col("CustomerStage") == "New")
            & pl.col("ModifiedDate").is_between(t(2026, 10, 2, tzinfo=UTC), t(2026, 10, 3, tzinfo=UTC), closed="left"))
        row = contacts.row(0, named=True)
        sb.upsert_rows("Contacts_DE", [{**row, "CustomerStage": "Lapsed"}])  # same day, new value
        contacts_chain = dg.AssetSelection.assets(["sfmc", "raw", "contacts"], ["sfmc", "clean", "contacts"])
        assert dg.materialize(list(defs.assets or []), resources=resources, instance=instance,
                              partition_key="2026-10-02", selection=contacts_chain).success
        segments = dg.AssetSelection.groups("segments")
        assert dg.materialize(list(defs.assets or []), resources=resources, instance=instance,
                              partition_key="2026-10-04", selection=segments).success
        got = wh.query("SELECT lifecycle_stage FROM segments.contact_features WHERE as_of_date = DATE '2026-10-04' "
                       "AND contact_key = ?", [row["SubscriberKey"]])
        assert got["lifecycle_stage"].to_list() == ["inactive"]
        member_of = set(wh.query("SELECT segment FROM segments.segment_membership WHERE as_of_date = DATE "
                                 "'2026-10-04' AND contact_key = ?", [row["SubscriberKey"]])["segment"])
        assert "reengagement" in member_of and "welcome_offer" not in member_of

        assert sb.inject_bad_rows("Contacts_DE", "invalid_email", dt.date(2026, 10, 3), n=2)
        failed = dg.materialize(list(defs.assets or []), resources=resources, instance=instance,
                                partition_key="2026-10-03", selection=contacts_chain, raise_on_error=False)
        assert not failed.success
        stopped = dg.materialize(list(defs.assets or []), resources=resources, instance=instance,
                                 partition_key="2026-10-04", selection=segments, raise_on_error=False)
        assert not stopped.success
        message = next(e for e in stopped.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE
                       ).step_failure_data.error.message
        assert "sfmc/clean/contacts 2026-10-03 (its latest materialisation failed)" in message, message
        assert not stopped.get_asset_materialization_events()

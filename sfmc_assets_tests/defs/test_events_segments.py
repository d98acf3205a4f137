"""Segments fed by tracking events, against an independent computation: SQL over the sandbox's own rows.

The pipeline runs a week of contacts, activities, the engagement data extension and the five tracking-event
types, then the segment tables with `engagement_source: both`, and again with `events`. The expected
counts and audiences are computed here in DuckDB SQL from Marketing Cloud's ground truth (the sandbox's
stored rows, not the extracted files), written for this test, not with the project's Polars code.
"""

import datetime as dt
from collections.abc import Iterator

import dagster as dg
import duckdb
import polars as pl
import pytest

from sfmc_assets.lib.config import ProjectConfig
from sfmc_assets.lib.warehouse import Warehouse
from sfmc_assets.sandboxes.marketing_cloud import MarketingCloudSandbox
from sfmc_assets_tests.conftest import DATA_END, DATA_START
from sfmc_assets_tests.defs.conftest import definitions_for, resources_for
from sfmc_assets_tests.instances import memory_instance

UTC = dt.timezone.utc
RANGE = ("2026-10-01", "2026-10-07")
CHECK_DAYS = ["2026-10-03", "2026-10-07"]
FIRST, END = dt.datetime(2026, 10, 1, tzinfo=UTC), dt.datetime(2026, 10, 8, tzinfo=UTC)

#: Per contact known at the end of day ?, its engagement counts over the 30 days ending with it.
COUNTS_SQL = """
WITH bounds AS (SELECT (CAST(? AS DATE) + 1)::TIMESTAMPTZ AS day_end),
people AS (
  SELECT SubscriberKey AS contact_key FROM contacts, bounds WHERE ModifiedDate < day_end GROUP BY 1
),
tracked AS (
  SELECT 'send' AS action, SubscriberKey, EventDate FROM sent
  UNION ALL SELECT 'open', SubscriberKey, EventDate FROM opens
  UNION ALL SELECT 'click', SubscriberKey, EventDate FROM clicks
),
from_events AS (
  SELECT SubscriberKey AS contact_key, count(*) FILTER (WHERE action = 'send') AS sends,
         count(*) FILTER (WHERE action = 'open') AS opens, count(*) FILTER (WHERE action = 'click') AS clicks
  FROM tracked, bounds WHERE EventDate >= day_end - INTERVAL 30 DAY AND EventDate < day_end GROUP BY 1
),
responses AS (  -- only with `both`: the data extension's replies
  SELECT SubscriberKey AS contact_key,
         count(*) FILTER (WHERE ResponseSentiment = 'Positive') AS positive,
         count(*) FILTER (WHERE ResponseSentiment = 'Negative') AS negative
  FROM engagement, bounds
  WHERE EventName = 'Replied' AND EventDate >= day_end - INTERVAL 30 DAY AND EventDate < day_end AND ?
  GROUP BY 1
)
SELECT contact_key, coalesce(sends, 0) AS sends, coalesce(opens, 0) AS opens, coalesce(clicks, 0) AS clicks,
       coalesce(positive, 0) AS positive_responses, coalesce(negative, 0) AS negative_responses
FROM people LEFT JOIN from_events USING (contact_key) LEFT JOIN responses USING (contact_key)
ORDER BY contact_key
"""

#: The engagement audiences of day ?, eligible contacts only (latest row: opted in, valid e-mail).
AUDIENCES_SQL = """
WITH bounds AS (SELECT (CAST(? AS DATE) + 1)::TIMESTAMPTZ AS day_end),
latest AS (
  SELECT c.* FROM contacts c, bounds WHERE c.ModifiedDate < day_end
  QUALIFY row_number() OVER (PARTITION BY SubscriberKey ORDER BY ModifiedDate DESC) = 1
),
eligible AS (
  SELECT SubscriberKey AS contact_key FROM latest
  WHERE OptIn AND regexp_matches(lower(trim(EmailAddress)), '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$')
)
SELECT segment, contact_key FROM (
  SELECT 'promotion' AS segment, contact_key FROM counts WHERE (clicks > 0 OR positive_responses > 0)
    AND negative_responses = 0
  UNION ALL SELECT 'service_follow_up', contact_key FROM counts WHERE negative_responses > 0
) JOIN eligible USING (contact_key) ORDER BY segment, contact_key
"""


def _expected(sandbox: MarketingCloudSandbox, day: str, with_responses: bool) -> tuple[pl.DataFrame, pl.DataFrame]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    tables = {"contacts": sandbox.ground_truth("Contacts_DE", FIRST, END),
              "engagement": sandbox.ground_truth("Campaign_Engagement", FIRST, END),
              "sent": sandbox.tracking.ground_truth("SentEvent", FIRST, END),
              "opens": sandbox.tracking.ground_truth("OpenEvent", FIRST, END),
              "clicks": sandbox.tracking.ground_truth("ClickEvent", FIRST, END)}
    for name, frame in tables.items():  # noqa: B007 - `frame` is read by DuckDB's replacement scan
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
    counts = con.execute(COUNTS_SQL, [day, with_responses]).pl()
    con.execute("CREATE TABLE counts AS SELECT * FROM counts")
    return counts, con.execute(AUDIENCES_SQL, [day]).pl()


def _with_source(config: ProjectConfig, source: str) -> ProjectConfig:
    assert config.segments is not None
    raw = config.model_dump()
    raw["segments"]["engagement_source"] = source
    return ProjectConfig.model_validate(raw)


def _run(defs: dg.Definitions, resources: dict, instance: dg.DagsterInstance, selection: dg.AssetSelection) -> None:
    result = dg.materialize(
        list(defs.assets or []), resources=resources, instance=instance, raise_on_error=False, selection=selection,
        tags={"dagster/asset_partition_range_start": RANGE[0], "dagster/asset_partition_range_end": RANGE[1]})
    assert result.success


@pytest.fixture(scope="module")
def segmented(tmp_path_factory: pytest.TempPathFactory, config: ProjectConfig) -> Iterator[dict]:
    tmp_path = tmp_path_factory.mktemp("event_segments")
    sb = MarketingCloudSandbox(tmp_path / "mc", start=DATA_START, end=DATA_END, sends_per_day=1200,
                               rows={"Contacts_DE": 300, "Campaign_Engagement": 2000, "Web_Activities": 1000}).start()
    resources = resources_for(sb, tmp_path)
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    feeding = dg.AssetSelection.groups("sfmc_raw", "sfmc_clean", "segments") - dg.AssetSelection.key_prefixes(
        ["sfmc", "raw", "orders"], ["sfmc", "clean", "orders"])
    with memory_instance() as instance:
        _run(definitions_for(_with_source(config, "both")), resources, instance, feeding)
        both = {d: warehouse.query("SELECT * FROM segments.contact_features WHERE as_of_date = ?",
                                   [dt.date.fromisoformat(d)]) for d in CHECK_DAYS}
        both_members = {d: warehouse.query("SELECT segment, contact_key FROM segments.segment_membership WHERE "
                                           "as_of_date = ? ORDER BY segment, contact_key", [dt.date.fromisoformat(d)])
                        for d in CHECK_DAYS}
        _run(definitions_for(_with_source(config, "events")), resources, instance, dg.AssetSelection.groups("segments"))
        yield {"sandbox": sb, "warehouse": warehouse, "both": both, "both_members": both_members}
    sb.stop()


def _counts(features: pl.DataFrame) -> pl.DataFrame:
    return features.select("contact_key", "sends", "opens", "clicks", "positive_responses",
                           "negative_responses").sort("contact_key")


def test_counts_from_tracking_events_equal_independent_sql(segmented) -> None:
    wh, sb = segmented["warehouse"], segmented["sandbox"]
    for day in CHECK_DAYS:
        got = wh.query("SELECT * FROM segments.contact_features WHERE as_of_date = ?", [dt.date.fromisoformat(day)])
        expected, _ = _expected(sb, day, with_responses=False)
        assert expected["sends"].sum() > 0 and expected["clicks"].sum() > 0
        assert _counts(got).equals(expected.cast(_counts(got).schema)), day
        assert got["positive_responses"].sum() == got["negative_responses"].sum() == 0  # tracking has none


def test_audiences_from_tracking_events_equal_independent_sql(segmented) -> None:
    wh, sb = segmented["warehouse"], segmented["sandbox"]
    for day in CHECK_DAYS:
        got = wh.query("SELECT segment, contact_key FROM segments.segment_membership WHERE as_of_date = ? AND "
                       "segment IN ('promotion', 'service_follow_up') ORDER BY segment, contact_key",
                       [dt.date.fromisoformat(day)])
        _, expected = _expected(sb, day, with_responses=False)
        assert got.height > 0 and got.equals(expected), day


def test_both_takes_tracked_actions_from_events_and_responses_from_the_data_extension(segmented) -> None:
    sb = segmented["sandbox"]
    for day in CHECK_DAYS:
        expected, audiences = _expected(sb, day, with_responses=True)
        assert expected["negative_responses"].sum() > 0  # the data extension's replies are counted
        assert _counts(segmented["both"][day]).equals(expected.cast(_counts(segmented["both"][day]).schema)), day
        members = segmented["both_members"][day].filter(pl.col("segment").is_in(["promotion", "service_follow_up"]))
        assert members.equals(audiences), day


def test_counting_events_needs_the_tracking_types_it_counts(config: ProjectConfig) -> None:
    raw = config.model_dump()
    raw["segments"]["engagement_source"] = "events"
    raw["tracking_events"]["types"] = ["sent", "bounce"]
    with pytest.raises(ValueError, match="must include sent, open and click"):
        ProjectConfig.model_validate(raw)
    raw["tracking_events"]["types"] = ["sent", "open", "click"]
    raw["segments"]["engagement"] = "no_such_data_extension"  # not read when engagement comes from events
    assert ProjectConfig.model_validate(raw).segments.engagement_source == "events"  # type: ignore[union-attr]

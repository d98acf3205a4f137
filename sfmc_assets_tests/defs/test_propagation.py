"""Propagation: a clean day materialised again is followed by its publish and segment days, and only those.

The automation conditions are evaluated the way the automation sensor evaluates them
(`dg.evaluate_automation_conditions` over the instance's event log), after real materialisations against
both sandboxes. The daemon test (`e2e/test_propagation.py`) shows the same with the sensor running.
"""

import datetime as dt

import dagster as dg

from sfmc_assets.definitions import build_definitions
from sfmc_assets.lib.config import load_config
from sfmc_assets.sandboxes.experience_platform import ExperiencePlatformSandbox
from sfmc_assets.sandboxes.marketing_cloud import MarketingCloudSandbox
from sfmc_assets_tests.defs.conftest import resources_for

UTC = dt.timezone.utc
DAYS = ["2026-10-01", "2026-10-02", "2026-10-03"]
LATE_DAY = "2026-10-02"
SEGMENT_FEEDS = ("contacts", "campaigns", "activities")


def _requested(result: dg.EvaluateAutomationConditionsResult) -> set[tuple[str, str]]:
    return {(key.to_user_string(), partition)
            for key, subset in ((r.key, r.true_subset) for r in result.results if r.true_subset.size)
            for partition in subset.expensively_compute_partition_keys()}


def test_a_clean_day_materialised_again_is_published_and_segmented_once(
    fresh_mc_sandbox: MarketingCloudSandbox, aep_sandbox: ExperiencePlatformSandbox, tmp_path, instance
) -> None:
    defs = build_definitions(load_config())
    assets = list(defs.assets or [])
    resources = resources_for(fresh_mc_sandbox, tmp_path, aep_sandbox)
    chains = [f"{layer}/{de}" for de in SEGMENT_FEEDS for layer in ("sfmc/raw", "sfmc/clean", "aep")]
    every = [*chains, "segments/contact_features", "segments/segment_membership"]
    for day in DAYS:  # as the daily job does: every layer in one run, so nothing follows by itself
        assert dg.materialize(assets, partition_key=day, resources=resources, instance=instance,
                              selection=every).success
    graph = defs.resolve_asset_graph()
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert _requested(first) == set()  # first evaluation: a starting point, nothing requested
    assert _requested(dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)) == set()

    # A late contact row for 2026-10-02, then only raw and clean of that day again (a rerun, a late read).
    template = fresh_mc_sandbox.ground_truth("Contacts_DE").head(1).to_dicts()[0]
    fresh_mc_sandbox.upsert_rows("Contacts_DE", [template | {
        "SubscriberKey": "CUST-LATE-1", "ModifiedDate": dt.datetime(2026, 10, 2, 23, 30, tzinfo=UTC)}])
    assert dg.materialize(assets, partition_key=LATE_DAY, resources=resources, instance=instance,
                          selection=["sfmc/raw/contacts", "sfmc/clean/contacts"]).success
    followed = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert _requested(followed) == {("aep/contacts", LATE_DAY), ("segments/contact_features", LATE_DAY),
                                    ("segments/segment_membership", LATE_DAY)}

    # Once they ran, nothing more is requested: each followed day runs once.
    assert dg.materialize(assets, partition_key=LATE_DAY, resources=resources, instance=instance,
                          selection=["aep/contacts", "segments/contact_features",
                                     "segments/segment_membership"]).success
    settled = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=followed.cursor)
    assert _requested(settled) == set()
    assert graph.get(dg.AssetKey(["aep", "contacts"])).automation_condition is not None


def test_a_backfill_of_clean_only_is_followed_except_on_the_day_that_failed_its_gate(
    fresh_mc_sandbox: MarketingCloudSandbox, aep_sandbox: ExperiencePlatformSandbox, tmp_path, instance
) -> None:
    """A ranged run (one run for several days, as backfills run) reports each day itself: the days that
    passed are followed, the day whose gate failed (not materialised) is not."""
    defs = build_definitions(load_config())
    assets = list(defs.assets or [])
    resources = resources_for(fresh_mc_sandbox, tmp_path, aep_sandbox)
    chain = ["sfmc/raw/campaigns", "sfmc/clean/campaigns", "aep/campaigns"]
    for day in DAYS[1:]:
        assert dg.materialize(assets, partition_key=day, resources=resources, instance=instance,
                              selection=chain).success
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    fresh_mc_sandbox.inject_bad_rows("Campaign_Engagement", "missing_required", dt.date.fromisoformat(LATE_DAY), n=2)
    ranged = dg.materialize(assets, resources=resources, instance=instance, selection=chain[:2],
                            tags={"dagster/asset_partition_range_start": DAYS[1],
                                  "dagster/asset_partition_range_end": DAYS[2]}, raise_on_error=False)
    assert not ranged.success  # 2026-10-02 failed its gate, 2026-10-03 was materialised
    after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert _requested(after) == {("aep/campaigns", DAYS[2])}

"""The code location: everything under `defs/` (autoloaded, as `dg` projects are), policies applied once.

Each folder of `defs/` contributes its part, built from the configuration in force (`lib/config.py`):
raw, clean, publish and segment assets, jobs and schedules, sensors, resources. A module added under
`defs/` (`dg scaffold defs dagster.asset my_asset.py`) is loaded with no edit here. What applies to
every asset (freshness and propagation on published and segment tables) and to every run (the
executor) is set here.

`build_definitions(config)` loads the same folder with another configuration (tests use it to add a
fourth data extension without code).
"""

import datetime as dt
import os
import warnings
from pathlib import Path

import dagster as dg

from sfmc_assets.defs.executors import executor_from_env
from sfmc_assets.defs.experience_platform.assets import PUBLISH_GROUP
from sfmc_assets.defs.segments.assets import SEGMENTS_GROUP
from sfmc_assets.lib.config import ProjectConfig, config_in_force
from sfmc_assets.lib.settings import config_path

#: Published and segment tables of daily data extensions are due every morning: the schedule runs at 02:00
#: UTC, so by 06:00 UTC yesterday's data should be out; the UI flags them when they are not.
DAILY_FRESHNESS = dg.FreshnessPolicy.cron(deadline_cron="0 6 * * *", lower_bound_delta=dt.timedelta(hours=24))


#: Published and segment partitions follow their clean partitions: when a clean day is materialised again
#: (late rows, a rerun, a backfill of clean only), the days downstream of it run once, by themselves.
#: `eager()` looks at the newest partition only; this looks at every day whose inputs were updated since
#: it last ran, except by a run that also ran it (a scheduled day-run publishes in the same run), once no
#: input is missing or running. The pandera gate needs no term of its own: it validates before it writes,
#: so a day that fails it is not materialised and never counts as updated. (`all_deps_blocking_checks_
#: passed()` would also never pass after a backfill: the per-day check results of a ranged run
#: (`defs/ranges.py`) are not linked to that day's materialisation, so Dagster does not count them current.)
PROPAGATE = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_missing()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("propagate clean days")
FOLLOWERS = dg.AssetSelection.groups(PUBLISH_GROUP, SEGMENTS_GROUP)
#: Evaluates PROPAGATE (Dagster's default automation sensor starts stopped; this one runs by default),
#: every `SFMC_ASSETS_PROPAGATION_INTERVAL_S` seconds (30: Dagster's default for sensors).
PROPAGATION_SENSOR = dg.AutomationConditionSensorDefinition(
    "sfmc_propagation_sensor", target=FOLLOWERS, default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=int(os.environ.get("SFMC_ASSETS_PROPAGATION_INTERVAL_S", "30")),
    description="Runs the publish and segment days whose clean inputs were materialised again.",
)


def freshness_for(schedule: str, interval: int) -> dg.FreshnessPolicy | None:
    """How fresh a published table must be, from how often its data extension is read (`frequency_tags`)."""
    if schedule == "once":  # read when launched
        return None
    if schedule == "daily" and interval == 1:
        return DAILY_FRESHNESS
    if schedule == "weekly" and interval == 1:
        return dg.FreshnessPolicy.cron(deadline_cron="0 6 * * 1", lower_bound_delta=dt.timedelta(weeks=1))
    # Every N hours, days or weeks: published within the period, plus the hours a run may take.
    period = dt.timedelta(**{{"hourly": "hours", "daily": "days", "weekly": "weeks"}[schedule]: interval})
    return dg.FreshnessPolicy.time_window(fail_window=period + dt.timedelta(hours=1 if schedule == "hourly" else 4))


def _policies(spec: dg.AssetSpec) -> dg.AssetSpec:
    """Freshness from the data extension's frequency (segment tables: daily), and propagation."""
    freshness = freshness_for(spec.tags.get("sfmc/schedule", "daily"), int(spec.tags.get("sfmc/interval", "1")))
    if freshness is not None:
        spec = dg.apply_freshness_policy(spec, freshness, overwrite_existing=False)
    return spec if spec.automation_condition else spec.replace_attributes(automation_condition=PROPAGATE)


def build_definitions(config: ProjectConfig | None = None) -> dg.Definitions:
    """The `defs/` folder loaded with `config` (default: the configuration file), policies applied."""
    with warnings.catch_warnings(), config_in_force(config):
        # Used on purpose, each explained where used: single-run backfills (Beta), per-day check results
        # (Preview), pandera's TableSchema for the catalog (Beta), map_resolved_asset_specs (Preview).
        warnings.simplefilter("ignore", dg.BetaWarning)
        warnings.simplefilter("ignore", dg.PreviewWarning)
        loaded = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
        run_wide = dg.Definitions(executor=executor_from_env(), sensors=[PROPAGATION_SENSOR])
        return dg.Definitions.merge(loaded, run_wide).map_resolved_asset_specs(func=_policies, selection=FOLLOWERS)


_BUILT: dict[tuple[object, ...], dg.Definitions] = {}


def environment() -> tuple[tuple[str, str], ...]:
    """The environment variables the definitions can depend on (executor, intervals, credentials, paths)."""
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(("SFMC_", "AEP_", "DAGSTER_"))))


def _identity() -> tuple[object, ...]:
    """What the definitions are built from: the configuration file as it is now, and the environment."""
    path = config_path()
    stamp = path.stat().st_mtime_ns if path.exists() else None
    return (str(path), stamp, environment())


@dg.definitions
def defs() -> dg.Definitions:
    """The project's definitions, built once per process for a given configuration file and environment.

    Dagster loads the code location again in every run and step process; with step processes forked from
    a server that already built them (`sfmc_assets.preload`), that load is a lookup here.
    """
    key = _identity()
    if key not in _BUILT:
        _BUILT.clear()
        _BUILT[key] = build_definitions()
    return _BUILT[key]

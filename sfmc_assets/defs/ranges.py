"""Per-day results from runs that cover a range of days, and the days a step may build on.

Raw and clean assets use `BackfillPolicy.single_run()`: one run for the whole range, each step working
day by day. Dagster records a ranged step's output as a materialisation of every day of the range and
its check results once for the range, so the steps report each day themselves:

- every day gets its own `AssetCheckEvaluation` (the check specs are partitioned);
- when every day passed, the step yields its output once, with each day's own metadata attached to that
  day (`add_asset_metadata(partition_key=...)`): one materialisation per day, carrying that day's rows;
- when a day failed, the step yields no output: it logs one `AssetMaterialization` per good day and then
  raises naming the failed days. The run fails, so Dagster marks exactly the days without a
  materialisation as failed (`asset_backfill.py`: a failed ranged run's planned range minus what it
  materialised; the UI: planned in a failed run, never materialised).

Dagster 1.13 cannot mark one day of a ranged output as failed while the step succeeds (issue #17836):
any yielded output materialises every day of the range, and without it the steps downstream in the same
run are skipped for every day. So in backfills the layers downstream of the gate, publish and segments,
run in runs of their own: their backfill policy (`DOWNSTREAM_BACKFILL_POLICY`) differs from the clean
layer's, and the backfill daemon only puts assets with equal policies in one run. It launches them once
the clean days they need are materialised, for exactly those days (docs/backfills.md).

A single-partition run (the UI's *Materialize*, the daily schedule) is reported the usual way.
"""

import datetime as dt
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

#: Publish and segment assets: a multi-run policy only so that it differs from `single_run()` (see the
#: module docstring); ten years of days per run keeps every real backfill in one run per contiguous range.
DOWNSTREAM_DAYS_PER_RUN = 3660
DOWNSTREAM_BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=DOWNSTREAM_DAYS_PER_RUN)
# A job over every layer (the daily job, the UI's ad-hoc runs) then mixes the two policies; Dagster warns
# and uses the smaller per-run limit, 3660 days, which is what we want: say nothing each time it resolves.
warnings.filterwarnings("ignore", message=r"Asset job .* materializes assets with varying BackfillPolicies",
                        category=UserWarning)


@dataclass
class DayResult:
    """What one day of a step produced: its metadata, its check results, or why it failed."""

    partition: str
    metadata: Mapping[str, Any] = field(default_factory=dict)
    checks: list[dg.AssetCheckResult] = field(default_factory=list)
    failure: str | None = None  # set when the day was not materialised


def report(
    context: dg.AssetExecutionContext, key: dg.AssetKey, days: list[DayResult]
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Yield (and log) the events for `days` of one asset; raise `dg.Failure` naming the failed days."""
    yield from report_assets(context, {key: days})


def report_assets(
    context: dg.AssetExecutionContext, results: Mapping[dg.AssetKey, list[DayResult]]
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """`report` for a step that materialises several assets (a multi-asset), each day by day."""
    failed = [(key, d) for key, days in results.items() for d in days if d.failure is not None]
    if context.has_partition_key:
        for key, days in results.items():
            for day in days:
                if day.failure is None:
                    yield dg.MaterializeResult(asset_key=key, metadata=dict(day.metadata),
                                               check_results=[_for(key, c) for c in day.checks])
                else:
                    yield from (_for(key, c) for c in day.checks)
    else:
        yield from _report_range(context, results, failed)
    if failed:
        raise _failure(failed, sum(len(days) for days in results.values()))


def _report_range(
    context: dg.AssetExecutionContext, results: Mapping[dg.AssetKey, list[DayResult]],
    failed: Sequence[tuple[dg.AssetKey, DayResult]],
) -> Iterator[dg.MaterializeResult]:
    for key, days in results.items():
        for day in days:
            for check in day.checks:
                context.log_event(dg.AssetCheckEvaluation(
                    asset_key=key, check_name=check.check_name or "", passed=check.passed,
                    partition=day.partition, metadata=dict(check.metadata), severity=check.severity,
                    description=check.description,
                ))
            if failed and day.failure is None:
                context.log_event(dg.AssetMaterialization(asset_key=key, partition=day.partition,
                                                          metadata=dict(day.metadata)))
            elif not failed:
                context.add_asset_metadata(dict(day.metadata), asset_key=key, partition_key=day.partition)
    if not failed:
        for key, days in results.items():
            yield dg.MaterializeResult(asset_key=key, check_results=_summaries(key, days))


def _failure(failed: Sequence[tuple[dg.AssetKey, DayResult]], total: int) -> dg.Failure:
    if total == 1:
        return dg.Failure(description=failed[0][1].failure, allow_retries=False)
    reasons = " | ".join(d.failure if (d.failure or "").startswith(key.to_user_string())
                         else f"{key.to_user_string()} {d.partition}: {d.failure}" for key, d in failed[:5])
    more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
    return dg.Failure(
        description=f"{len(failed)} of {total} asset day(s) failed{more}. {reasons}",
        metadata={"failed_days": sorted({d.partition for _, d in failed})},
        allow_retries=False,
    )


def _for(key: dg.AssetKey, check: dg.AssetCheckResult) -> dg.AssetCheckResult:
    """The check result bound to `key` (a multi-asset step must say which asset a result is for)."""
    return dg.AssetCheckResult(asset_key=key, check_name=check.check_name, passed=check.passed,
                               metadata=dict(check.metadata), severity=check.severity,
                               description=check.description)


def _summaries(key: dg.AssetKey, days: list[DayResult]) -> list[dg.AssetCheckResult]:
    """One range-level result per check (Dagster wants one); the per-day ones are logged as evaluations."""
    by_name: dict[str, list[dg.AssetCheckResult]] = {}
    for day in days:
        for check in day.checks:
            by_name.setdefault(check.check_name or "", []).append(check)
    return [
        dg.AssetCheckResult(
            asset_key=key, check_name=name, passed=all(c.passed for c in checks), severity=checks[0].severity,
            metadata={"days_checked": len(checks), "days_failed": sum(not c.passed for c in checks)},
            description="range summary; each day's own result is recorded on that day",
        )
        for name, checks in by_name.items()
    ]


def unusable_days(
    instance: dg.DagsterInstance, key: dg.AssetKey, partitions_def: dg.PartitionsDefinition,
    days: Iterable[str],
) -> dict[str, str]:
    """The days of `key` among `days` that a downstream computation must not read, with why.

    Usable means materialised and not attempted since: a day whose latest attempt failed (or that a run
    is writing right now, this run included: an upstream step of this run that did not materialise a day
    leaves it planned) may still have an older file in the lake, but reading it would silently mix an old
    day into today's answer. One query to the instance's partition status cache per call.
    """
    wanted = [d for d in dict.fromkeys(days) if partitions_def.has_partition_key(d)]
    if not wanted:
        return {}
    status = instance.get_status_by_partition(key, wanted, partitions_def) or {}
    reasons = {
        None: "never materialised",
        dg.AssetPartitionStatus.FAILED: "its latest materialisation failed",
        dg.AssetPartitionStatus.IN_PROGRESS: "not materialised by the run that last tried (or is writing it)",
    }
    return {d: reasons.get(status.get(d), "never materialised") for d in wanted
            if status.get(d) != dg.AssetPartitionStatus.MATERIALIZED}


def describe_days(days: Sequence[str]) -> str:
    """`2026-10-01..2026-10-03, 2026-10-07` for days (long lists stay readable in an error)."""
    runs: list[list[str]] = []
    for day in sorted(days):
        if runs and dt.date.fromisoformat(day) - dt.date.fromisoformat(runs[-1][-1]) == dt.timedelta(days=1):
            runs[-1].append(day)
        else:
            runs.append([day])
    return ", ".join(r[0] if len(r) == 1 else f"{r[0]}..{r[-1]}" for r in runs)

"""Per-day results from runs that cover a range of days.

Backfills run every asset with `BackfillPolicy.single_run()`: one run for the whole range, each step
working day by day, instead of one run (one process, one code load) per day. Dagster records a check
result of a ranged step once for the whole range and copies its metadata to every day (notes G11), so
the assets report each day themselves:

- every day gets its own `AssetCheckEvaluation` (the check specs are partitioned) and its own
  `AssetMaterialization` with that day's metadata; a day that fails its gate gets no materialisation;
- when every day passed, the step also yields its `MaterializeResult` (which Dagster records for the
  whole range, with summary metadata) *before* the per-day events, so each day's latest
  materialisation carries its own row count, window and preview;
- when a day failed, the step raises after reporting: the backfill marks exactly the failed days (and
  what is downstream of them) as failed, the other days stay materialised (Dagster's asset backfill
  subtracts the materialised days of a failed ranged run, `asset_backfill.py`).

A single-partition run (the UI's *Materialize*, the daily schedule) is reported the usual way.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import dagster as dg


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
    """Yield (and log) the events for `days`; raise `dg.Failure` naming the days that failed."""
    failed = [d for d in days if d.failure is not None]
    if context.has_partition_key:
        (day,) = days
        if day.failure is not None:
            yield from day.checks
            raise dg.Failure(description=day.failure, allow_retries=False)
        yield dg.MaterializeResult(metadata=dict(day.metadata), check_results=day.checks)
        return

    if not failed:
        summary: dict[str, Any] = {"days": len(days), "first_day": days[0].partition,
                                   "last_day": days[-1].partition}
        if all("dagster/partition_row_count" in d.metadata for d in days):
            summary["rows_total"] = sum(int(d.metadata["dagster/partition_row_count"]) for d in days)
        yield dg.MaterializeResult(metadata=summary, check_results=_summaries(days))
    for day in days:
        for check in day.checks:
            context.log_event(dg.AssetCheckEvaluation(
                asset_key=key, check_name=check.check_name or "", passed=check.passed,
                partition=day.partition, metadata=dict(check.metadata), severity=check.severity,
                description=check.description,
            ))
        if day.failure is None:
            context.log_event(dg.AssetMaterialization(asset_key=key, partition=day.partition,
                                                      metadata=dict(day.metadata)))
    if failed:
        reasons = " | ".join(f"{d.partition}: {d.failure}" for d in failed[:5])
        more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
        raise dg.Failure(
            description=f"{len(failed)} of {len(days)} day(s) failed{more}. {reasons}",
            metadata={"failed_days": [d.partition for d in failed]},
            allow_retries=False,
        )


def _summaries(days: list[DayResult]) -> list[dg.AssetCheckResult]:
    """One range-level result per check (Dagster wants one); the per-day ones follow as evaluations."""
    by_name: dict[str, list[dg.AssetCheckResult]] = {}
    for day in days:
        for check in day.checks:
            by_name.setdefault(check.check_name or "", []).append(check)
    return [
        dg.AssetCheckResult(
            check_name=name, passed=all(c.passed for c in results), severity=results[0].severity,
            metadata={"days_checked": len(results), "days_failed": sum(not c.passed for c in results)},
            description="range summary; each day's own result is recorded on that day",
        )
        for name, results in by_name.items()
    ]

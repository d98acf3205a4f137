"""`clean` + pandera `validate` of one in-memory partition, in a fresh process; prints one JSON line.

The clean asset's functions (without the Parquet writes): `plan_clean` and its batches, then the `Gate`
on each batch. The asset interleaves the two (Polars computes the next batches on its threads while
pandera checks one), which makes the split of the wall time meaningless, so here the batches are
collected first (clean), then gated (validation: pandera on each batch, the unique-key flags, the split
and the summary). pandera's first call in a process also pays a one-time set-up (it imports its
backends, and hypothesis, on first use): the run includes it, like the asset's first partition, and the
worker then times the whole validation once more ("warm") to give the share without it.

The input is built in memory with the raw layer's typed schema for `Campaign_Engagement` (source column
names, `frame_schema` of the configured fields, `_parse_errors`): unique ids, source enum spellings with
stray case and spaces, some nulls, event times spread over one UTC day. Every row passes the contract.
"""

import sys

if "--deployed" in sys.argv:
    # hypothesis is a test-only dependency (the `dev` extra): a deployed code location does not have it.
    # pandera imports it on its first validation when it is installed (~0.2 s), so the deployed case is
    # measured with it unimportable, which is exactly what pandera sees when it is not installed.
    sys.modules["hypothesis"] = None  # type: ignore[assignment]

import datetime as dt
import json
import time

import pandera.polars as pa
import polars as pl

from bench._util import peak_rss_mb
from sfmc_assets.lib.config import load_config
from sfmc_assets.lib.marketing_cloud.types import frame_schema
from sfmc_assets.lib.schemas import contract
from sfmc_assets.lib.transforms import CLEAN_BATCH_ROWS, batches, plan_clean
from sfmc_assets.lib.validation import Gate, GateSummary

DAY = dt.datetime(2026, 9, 1, tzinfo=dt.timezone.utc)


def raw_frame(rows: int) -> pl.DataFrame:
    de = load_config().data_extension("campaigns")
    assert de.fields is not None
    schema = frame_schema(de.fields)
    i = pl.int_range(rows, dtype=pl.Int64)
    h = (i * 2654435761) % 1_000_003

    def pick(values: list[str | None], salt: int) -> pl.Expr:
        return pl.lit(pl.Series(values, dtype=pl.String)).gather((h + salt) % len(values))

    frame = pl.select(
        EngagementID=pl.format("ENG-{}", i.cast(pl.String).str.zfill(9)),
        SubscriberKey=pl.format("CUST-{}", (h % 200_000).cast(pl.String).str.zfill(7)),
        CampaignID=pl.format("CMP-{}", (h % 40).cast(pl.String)),
        CampaignName=pick(["Autumn Sale", " Welcome series ", "Loyalty reward", "Re-engagement"], 1),
        Channel=pick(["Email", "SMS", "Push", " email "], 2),  # required in Marketing Cloud: never empty
        EventName=pick(["Sent", "Opened", "Clicked", " replied", "Unsubscribed", "Bounced", "OPENED"], 3),
        ResponseSentiment=pick([None, None, None, "Positive", "negative ", "Neutral"], 4),
        LinkURL=pl.when(h % 3 == 0).then(pl.format("https://example.com/offer/{}", h % 977)),
        EventDate=pl.lit(DAY) + pl.duration(seconds=h * 86_399 // 1_000_002),
        _parse_errors=pl.lit(None, pl.String),
    )
    return frame.select([pl.col(name).cast(dtype) for name, dtype in schema.items()])


def _validate(parts: list[pl.DataFrame], schema: pa.DataFrameSchema, conflicts: pl.DataFrame,
              key: tuple[str, ...]) -> GateSummary:
    gate = Gate(schema, {key: conflicts})
    for batch in parts:
        gate.check(batch)
    return gate.summary()


def main() -> None:
    p = json.loads(sys.stdin.read())
    de = load_config().data_extension("campaigns")
    raw = raw_frame(p["rows"])
    schema = contract(de, de.fields, (DAY, DAY + dt.timedelta(days=1)))
    started = time.perf_counter()
    plan = plan_clean(raw, de, as_of=DAY + dt.timedelta(days=1))
    parts = list(batches(plan.frame, CLEAN_BATCH_ROWS))
    clean_s = time.perf_counter() - started
    started = time.perf_counter()
    summary = _validate(parts, schema, plan.conflicting_keys, plan.key)
    validate_s = time.perf_counter() - started
    started = time.perf_counter()
    _validate(parts, schema, plan.conflicting_keys, plan.key)
    warm_validate_s = time.perf_counter() - started
    total = clean_s + validate_s
    assert summary.failing_rows == 0 and not summary.blocking_schema_errors, summary.failures_by_rule()
    print(json.dumps({"rows": raw.height, "deployed": "--deployed" in sys.argv,
                      "hypothesis_imported": sys.modules.get("hypothesis") is not None, "clean_rows": summary.rows_checked, "batch_rows": CLEAN_BATCH_ROWS,
                      "clean_s": round(clean_s, 3), "validate_s": round(validate_s, 3),
                      "warm_validate_s": round(warm_validate_s, 3), "total_s": round(total, 3),
                      "rows_per_s": round(raw.height / total), "clean_rows_per_s": round(raw.height / clean_s),
                      "validate_rows_per_s": round(raw.height / validate_s),
                      "validation_share": round(validate_s / total, 3),
                      "validation_share_warm": round(warm_validate_s / (clean_s + warm_validate_s), 3),
                      "peak_rss_mb": round(peak_rss_mb(), 1)}))


if __name__ == "__main__":
    main()

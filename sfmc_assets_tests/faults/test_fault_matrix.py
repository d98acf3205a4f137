"""The fault matrix: the real chain (extract -> clean -> gate -> publish) under one injected fault at a time.

Each case runs `sfmc/raw/campaigns -> sfmc/clean/campaigns -> aep/campaigns` for one day against both
sandboxes with one fault, then asserts one of two outcomes:
- recovered: the run succeeds and the data equals the source exactly;
- clean failure: the run fails with a message naming the data extension, the partition and the cause,
  and a rerun once the fault is gone completes exactly.
"Exactly" means: the clean partition holds every source row of the day once (no row lost, none twice)
and Experience Platform holds exactly one live batch for the day, with one record per row.

Every case writes its outcome into the folder named by `SFMC_FAULT_MATRIX_OUT` when it is set;
`python -m sfmc_assets_tests.faults.table <folder>` turns those files into the README's table
(`make fault-table` does both), so the table is the tests' own results, not prose.
"""

import datetime as dt
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest

from sfmc_assets.lib.config import ProjectConfig
from sfmc_assets.lib.extract import Window
from sfmc_assets.lib.lake import ParquetLake
from sfmc_assets.resources import MarketingCloudResource
from sfmc_assets.sandboxes.experience_platform import ExperiencePlatformSandbox
from sfmc_assets.sandboxes.experience_platform import Fault as AepFault
from sfmc_assets.sandboxes.marketing_cloud import Fault, MarketingCloudSandbox
from sfmc_assets_tests.conftest import DATA_END, DATA_START
from sfmc_assets_tests.defs.conftest import aep_resource, definitions_for, resources_for
from sfmc_assets_tests.instances import memory_instance

PARTITION = "2026-10-03"
DE = "campaigns"
KEY = "Campaign_Engagement"
CHAIN = dg.AssetSelection.assets(["sfmc", "raw", DE], ["sfmc", "clean", DE], ["aep", DE])


@dataclass
class Env:
    """One case's world: a fresh Marketing Cloud, the shared Experience Platform, and knobs to break them."""

    mc: MarketingCloudSandbox
    aep: ExperiencePlatformSandbox
    tmp: Path
    config: ProjectConfig
    resources: dict[str, object] = field(default_factory=dict)

    def run(self, config: ProjectConfig | None = None) -> dg.ExecuteInProcessResult:
        defs = definitions_for(config or self.config)
        with memory_instance() as instance:
            return dg.materialize(list(defs.assets or []), partition_key=PARTITION, selection=CHAIN,
                                  resources=self.resources, instance=instance, raise_on_error=False)

    def discovery(self, name: str) -> Path:
        return self.tmp / f"{name}.json"

    def edit_discovery(self, name: str, **changes: object) -> dict:
        path = self.discovery(name)
        original = json.loads(path.read_text())
        path.write_text(json.dumps({**original, **changes}))
        return original


@pytest.fixture
def env(tmp_path: Path, aep_sandbox: ExperiencePlatformSandbox, config: ProjectConfig) -> Env:
    mc = MarketingCloudSandbox(tmp_path / "mc", start=DATA_START, end=DATA_END,
                               rows={"Contacts_DE": 200, "Campaign_Engagement": 2000, "Web_Activities": 100}).start()
    resources = resources_for(mc, tmp_path, aep_sandbox)
    resources["marketing_cloud"] = MarketingCloudResource(
        sandbox_discovery_file=str(tmp_path / "marketing_cloud.json"), page_size=50, max_concurrency=4,
        timeout_s=1.0, backoff_initial_s=0.05, max_retry_s=20.0, max_attempts=6,
    )
    yield Env(mc, aep_sandbox, tmp_path, config, resources)
    aep_sandbox.clear_faults()
    mc.stop()


def _message(result: dg.ExecuteInProcessResult) -> str:
    failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    return failures[0].step_failure_data.error.message if failures else ""


def _exactness(env: Env) -> tuple[int, int]:
    """(rows lost, rows duplicated) of the clean partition and the live Experience Platform batch."""
    window = Window.day(PARTITION)
    truth = set(env.mc.ground_truth(KEY, window.start, window.end)["EngagementID"])
    clean = ParquetLake(str(env.tmp / "lake")).read(["sfmc", "clean", DE], PARTITION)["engagement_id"]
    dataset = env.aep.discovery()["datasets"]["engagement"]
    live = [b for b in env.aep.batches(dataset) if b["live"] and f"{DE}/{PARTITION}" in str(b.get("tags"))]
    assert len(live) == 1, f"{len(live)} live batches for the day"
    published = live[0]["metrics"]["outputRecordCount"]
    lost = len(truth - set(clean)) + max(0, len(truth) - published)
    duplicated = (clean.len() - clean.n_unique()) + max(0, published - len(truth))
    return lost, duplicated


@dataclass(frozen=True)
class Case:
    layer: str
    fault: str
    inject: Callable[[Env], Callable[[], None] | None]  # returns how to remove the fault (None: nothing)
    expect: str  # "recovered" or the words the failure message must contain
    config: Callable[[ProjectConfig], ProjectConfig] | None = None


def _mc(*faults: Fault) -> Callable[[Env], None]:
    def inject(env: Env) -> None:
        env.mc.set_faults(list(faults))
    return inject


def _aep(*faults: AepFault) -> Callable[[Env], Callable[[], None]]:
    def inject(env: Env) -> Callable[[], None]:
        env.aep.set_faults(list(faults))
        return env.aep.clear_faults
    return inject


def _stuck_batch(env: Env) -> Callable[[], None]:
    """Platform never finishes the batch. This case alone has a 2-s batch deadline, so it takes seconds;
    the others keep the default, which a batch of a loaded machine never reaches."""
    usual = env.resources["experience_platform"]
    env.resources["experience_platform"] = aep_resource(env.discovery("experience_platform"), batch_deadline_s=2.0)
    env.aep.set_faults([AepFault(kind="stuck_processing", route="complete", times=None)])

    def undo() -> None:
        env.aep.clear_faults()
        env.resources["experience_platform"] = usual
    return undo


def _discovery(name: str, **changes: object) -> Callable[[Env], Callable[[], None]]:
    def inject(env: Env) -> Callable[[], None]:
        original = env.edit_discovery(name, **changes)
        return lambda: env.discovery(name).write_text(json.dumps(original))
    return inject


def _bad_rows(kind: str) -> Callable[[Env], Callable[[], None]]:
    """Rows the gate must stop; the fix is the source removing them."""
    def inject(env: Env) -> Callable[[], None]:
        env.mc.inject_bad_rows(KEY, kind, dt.date.fromisoformat(PARTITION), n=2)
        return lambda: env.mc.delete_rows(KEY, "\"EngagementID\" LIKE 'BAD-%'")
    return inject


def _add_column(env: Env) -> Callable[[], None]:
    env.mc.alter_schema(KEY, add={"Score": "Number"})
    return lambda: env.mc.alter_schema(KEY, drop=["Score"])


def _drop_column(env: Env) -> Callable[[], None]:
    env.mc.alter_schema(KEY, drop=["LinkURL"])
    # The fix is the column coming back (its old values are gone; the rows are what must be exact).
    return lambda: env.mc.alter_schema(KEY, add={"LinkURL": "Text"})


def _retype_column(env: Env) -> Callable[[], None]:
    # Retyping loses the values that do not convert (all of them here); the repair retypes the column
    # back and restores the day's values, as re-importing them would (Channel is required).
    start = dt.datetime.fromisoformat(PARTITION).replace(tzinfo=dt.timezone.utc)
    rows = env.mc.ground_truth(KEY, start, start + dt.timedelta(days=1)).to_dicts()
    env.mc.alter_schema(KEY, retype={"Channel": "Number"})

    def repair() -> None:
        env.mc.alter_schema(KEY, retype={"Channel": "Text"})
        env.mc.upsert_rows(KEY, rows)
    return repair


def _small_upload_limit(env: Env) -> Callable[[], None]:
    original = env.aep.max_file_bytes
    env.aep.max_file_bytes = 1024
    return lambda: setattr(env.aep, "max_file_bytes", original)


def _de(**changes: object) -> Callable[[ProjectConfig], ProjectConfig]:
    def edit(config: ProjectConfig) -> ProjectConfig:
        return config.model_copy(update={"data_extensions": tuple(
            d.model_copy(update=changes) if d.name == DE else d for d in config.data_extensions)})
    return edit


def _dataset(dataset: str) -> Callable[[ProjectConfig], ProjectConfig]:
    def edit(config: ProjectConfig) -> ProjectConfig:
        de = config.data_extension(DE)
        assert de.aep is not None
        return _de(aep=de.aep.model_copy(update={"dataset": dataset}))(config)
    return edit


CASES = [
    Case("Marketing Cloud", "429 storm with Retry-After", _mc(Fault(route="rowset", kind="status", status=429, retry_after=1, after=1, times=3)), "recovered"),
    Case("Marketing Cloud", "5xx burst", _mc(Fault(route="rowset", kind="status", status=500, after=1, times=4)), "recovered"),
    Case("Marketing Cloud", "503 with Retry-After", _mc(Fault(route="*", kind="status", status=503, retry_after=0, times=3)), "recovered"),
    Case("Marketing Cloud", "request timeout", _mc(Fault(route="rowset", kind="latency", latency_ms=1500, after=2, times=2)), "recovered"),
    Case("Marketing Cloud", "connection reset", _mc(Fault(route="rowset", kind="reset", after=1, times=3)), "recovered"),
    Case("Marketing Cloud", "malformed page", _mc(Fault(route="rowset", kind="malformed", after=2, times=2)), "recovered"),
    Case("Marketing Cloud", "truncated page", _mc(Fault(route="rowset", kind="truncate", after=2, times=2)), "recovered"),
    Case("Marketing Cloud", "token expiry mid-paging", _mc(Fault(route="rowset", kind="expire_token", after=3)), "recovered"),
    Case("Marketing Cloud", "token endpoint throttled", _mc(Fault(route="token", kind="status", status=429, times=3)), "recovered"),
    Case("Marketing Cloud", "count changing mid-read (rows inserted)", _mc(Fault(route="rowset", kind="mutate", mutation="insert_before", n=3, after=2, key=KEY)), "recovered"),
    Case("Marketing Cloud", "rows deleted between pages", _mc(Fault(route="rowset", kind="mutate", mutation="delete", n=2, after=3, key=KEY)), "recovered"),
    Case("Marketing Cloud", "rows updated between pages", _mc(Fault(route="rowset", kind="mutate", mutation="update", n=2, after=2, key=KEY)), "recovered"),
    Case("Marketing Cloud", "5xx that does not end", _mc(Fault(route="rowset", kind="status", status=500, times=None)), "gave up after"),
    Case("Marketing Cloud", "connection refused", _discovery("marketing_cloud", auth_base_uri="http://127.0.0.1:9/"), "connection failed"),
    Case("Marketing Cloud", "bad credentials", _discovery("marketing_cloud", client_secret="wrong"), "refused the credentials"),
    Case("Marketing Cloud", "wrong base URI", lambda env: _discovery("marketing_cloud", auth_base_uri=env.mc.url + "nowhere/")(env), "token endpoint"),
    Case("Marketing Cloud", "unknown data extension key", lambda env: None, "no data extension with external key", _de(external_key="No_Such_DE")),
    Case("Marketing Cloud", "column added", _add_column, "column 'Score' (Number) was added"),
    Case("Marketing Cloud", "column removed", _drop_column, "column 'LinkURL' was removed"),
    Case("Marketing Cloud", "column retyped", _retype_column, "column 'Channel' changed type from Text to Number"),
    Case("Marketing Cloud", "required value missing", _bad_rows("missing_required"), "pandera_contract gate failed"),
    Case("Marketing Cloud", "date that does not parse", _bad_rows("unparseable_date"), "values_parse"),
    Case("Marketing Cloud", "value outside the mapping", _bad_rows("unmapped_value"), "action: isin"),
    Case("Marketing Cloud", "duplicate key with conflicting values", _bad_rows("duplicate_key"), "field_uniqueness"),
    Case("Experience Platform", "IMS token endpoint 5xx", _aep(AepFault(kind="http_error", route="ims", status=503, times=2)), "recovered"),
    Case("Experience Platform", "5xx on create batch", _aep(AepFault(kind="http_error", route="create_batch", status=502, times=1)), "recovered"),
    Case("Experience Platform", "429 on upload", _aep(AepFault(kind="http_error", route="upload", status=429, times=2)), "recovered"),
    Case("Experience Platform", "5xx on complete", _aep(AepFault(kind="http_error", route="complete", status=500, times=2)), "recovered"),
    Case("Experience Platform", "5xx on batch status", _aep(AepFault(kind="http_error", route="catalog_batch", status=503, times=2)), "recovered"),
    Case("Experience Platform", "token expired mid-run", _aep(AepFault(kind="expire_tokens", route="upload", times=1)), "recovered"),
    Case("Experience Platform", "upload over the size limit", _small_upload_limit, "413"),
    Case("Experience Platform", "batch failed", _aep(AepFault(kind="fail_batch", route="complete", times=None)), "INGEST"),
    Case("Experience Platform", "batch stuck past the deadline", _stuck_batch, "deadline"),
    Case("Experience Platform", "wrong sandbox name", _discovery("experience_platform", sandbox_name="dev"), "sandbox"),
    Case("Experience Platform", "dataset missing", lambda env: None, "dataset", _dataset("5ad0c0a1e0c7a5d0000000ff")),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c.layer}: {c.fault}" for c in CASES])
def test_fault(case: Case, env: Env) -> None:
    undo = case.inject(env)
    faulty_config = case.config(env.config) if case.config else None
    result = env.run(faulty_config)
    message = _message(result)
    env.mc.clear_faults()
    if case.expect == "recovered":
        assert result.success, message
        outcome, detail = "recovered", "run succeeded"
    else:
        assert not result.success
        assert case.expect in message, message
        assert PARTITION in message and (DE in message or KEY in message), message
        if undo:
            undo()
        rerun = env.run()  # the fault is gone (and the configuration right): a rerun completes
        assert rerun.success, _message(rerun)
        outcome = "clean failure, rerun complete"
        cause = message.split(" failed: ", 1)[-1] if " failed: " in message else message.split(" failed ", 1)[-1]
        detail = "failed: " + " ".join(cause.split())[:150]
    lost, duplicated = _exactness(env)
    assert (lost, duplicated) == (0, 0)
    _record(case, outcome, detail, lost, duplicated)


def _record(case: Case, outcome: str, detail: str, lost: int, duplicated: int) -> None:
    """One JSON file per case (test workers run in parallel), read by `faults/table.py`."""
    target = os.environ.get("SFMC_FAULT_MATRIX_OUT")
    if not target:
        return
    index = CASES.index(case)
    Path(target).mkdir(parents=True, exist_ok=True)
    (Path(target) / f"{index:03d}.json").write_text(json.dumps({
        "layer": case.layer, "fault": case.fault, "outcome": outcome, "detail": detail,
        "rows_lost": lost, "duplicates": duplicated}))


def test_every_case_is_distinct() -> None:
    assert len({(c.layer, c.fault) for c in CASES}) == len(CASES)

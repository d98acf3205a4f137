"""No client secret and no access token ends up anywhere Dagster or the project stores or prints.

The chain (raw → clean → Experience Platform → segments) runs in a real `dagster asset materialize`
subprocess on the *real-credentials* path (`SFMC_CLIENT_ID`, `AEP_CLIENT_ID`, ... set as environment
variables, so the resources take `dg.EnvVar`s), against both local sandboxes started with distinctive
secrets. Two more runs use a deliberately wrong Marketing Cloud secret and a wrong Experience Platform
secret, so the authentication error paths are exercised too. Then every place a secret could land is
scanned for every secret (right and wrong) and every access token the sandboxes issued:

- what the runs printed (stdout and stderr of the subprocesses);
- every file under `SFMC_ASSETS_HOME`, read as raw bytes: `DAGSTER_HOME` (SQLite run storage, event log,
  schedule storage, compute logs), the Parquet lake, the DuckDB warehouse;
- the instance's own view, which also covers values SQLite split over overflow pages: every run (config,
  tags), its job and execution-plan snapshots, every event of every run, and each asset materialisation's
  and check evaluation's metadata value by value.

The sandboxes' state folders live outside `SFMC_ASSETS_HOME`: they legitimately hold the sandbox's own
secret and the tokens it issued (that is what a server stores). They serve as the scanner's positive
control: the Experience Platform sandbox's state file must contain the tokens the scan looks for.

Personal data gets the same treatment: every value of every personal column (lib/personal.py: contact
keys, e-mails, names, phones, the configured ones) of every configured data extension, read back from
the lake the runs wrote, must appear nowhere Dagster stores or prints (metadata previews and failure
samples show them masked); the lake and the warehouse legitimately hold them.
"""

import datetime as dt
import os
import shutil
import subprocess
import sys
import traceback
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest

from sfmc_assets.lib.config import load_config
from sfmc_assets.lib.experience_platform import ExperiencePlatformClient
from sfmc_assets.lib.extract import fields_from_metadata
from sfmc_assets.lib.lake import ParquetLake
from sfmc_assets.lib.marketing_cloud import MarketingCloudClient, RetrySettings
from sfmc_assets.lib.personal import personal_columns, personal_source_columns
from sfmc_assets.resources import ExperiencePlatformResource, MarketingCloudResource
from sfmc_assets.sandboxes.experience_platform import ExperiencePlatformSandbox
from sfmc_assets.sandboxes.marketing_cloud import MarketingCloudSandbox

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DAGSTER = Path(sys.executable).parent / "dagster"
PARTITION = "2026-10-01"  # the first partition: its segment windows need no earlier day
CHAIN = "group:sfmc_raw,group:sfmc_clean,group:aep_publish,group:segments"
ROWS = {"Contacts_DE": 120, "Campaign_Engagement": 600, "Web_Activities": 600}
NO_RETRY = RetrySettings(max_attempts=2, max_total_s=5.0, backoff_initial_s=0.01, backoff_max_s=0.05)

_RUN_ID = uuid.uuid4().hex
SFMC_SECRET = f"SFMC-SECRET-{_RUN_ID[:16]}"
AEP_SECRET = f"AEP-SECRET-{_RUN_ID[16:]}"
SFMC_WRONG = f"SFMC-WRONG-SECRET-{uuid.uuid4().hex[:16]}"
AEP_WRONG = f"AEP-WRONG-SECRET-{uuid.uuid4().hex[:16]}"
SECRETS = (SFMC_SECRET, AEP_SECRET, SFMC_WRONG, AEP_WRONG)


@dataclass
class Run:
    name: str
    returncode: int
    output: str


@dataclass
class Chain:
    home: Path
    dagster_home: Path
    aep_state: Path
    runs: dict[str, Run] = field(default_factory=dict)
    mc_tokens: set[str] = field(default_factory=set)
    aep_tokens: set[str] = field(default_factory=set)
    mc_stats: dict[str, int] = field(default_factory=dict)

    @property
    def tokens(self) -> set[str]:
        return self.mc_tokens | self.aep_tokens

    @property
    def needles(self) -> list[str]:
        return [*SECRETS, *sorted(self.tokens)]


def _leaks(text: str | bytes, needles: Iterable[str]) -> list[str]:
    """The needles found in `text`, shortened so a failing assertion does not print a secret in full."""
    found = []
    for needle in needles:
        hit = needle.encode() in text if isinstance(text, bytes) else needle in text
        if hit:
            found.append(needle[:12] + "…")
    return found


def _chain_env(home: Path, mc: MarketingCloudSandbox, aep: ExperiencePlatformSandbox, *,
               sfmc_secret: str, aep_secret: str) -> dict[str, str]:
    disc = aep.discovery()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SFMC_", "AEP_", "DAGSTER_"))}
    env.update({
        "SFMC_ASSETS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home"),
        "SFMC_ASSETS_EXECUTOR": "in_process",
        "SFMC_CLIENT_ID": mc.client_id, "SFMC_CLIENT_SECRET": sfmc_secret, "SFMC_AUTH_BASE_URI": mc.url,
        "AEP_CLIENT_ID": disc["client_id"], "AEP_CLIENT_SECRET": aep_secret, "AEP_ORG_ID": disc["org_id"],
        "AEP_SANDBOX_NAME": disc["sandbox_name"], "AEP_IMS_URL": disc["ims_url"],
        "AEP_PLATFORM_URL": disc["platform_url"],
    })
    return env


def _materialize(name: str, selection: str, env: dict[str, str]) -> Run:
    proc = subprocess.run(
        [str(DAGSTER), "asset", "materialize", "-m", "sfmc_assets.definitions", "--select", selection,
         "--partition", PARTITION],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240, check=False,
    )
    return Run(name, proc.returncode, proc.stdout + "\n" + proc.stderr)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    root = tmp_path_factory.mktemp("secrets")
    home = root / "home"  # SFMC_ASSETS_HOME: no sandbox discovery files here, so only the env vars can work
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True)
    shutil.copy(REPO / "deploy" / "dagster.dev.yaml", dagster_home / "dagster.yaml")
    mc = MarketingCloudSandbox(root / "mc_state", start=dt.date(2026, 10, 1), end=dt.date(2026, 10, 8),
                               rows=ROWS, client_secret=SFMC_SECRET)
    aep = ExperiencePlatformSandbox(root / "aep_state", client_secret=AEP_SECRET, processing_delay_s=0.05)
    mc.start()
    aep.start()
    result = Chain(home, dagster_home, root / "aep_state")
    try:
        good = _chain_env(home, mc, aep, sfmc_secret=SFMC_SECRET, aep_secret=AEP_SECRET)
        result.runs["good"] = _materialize("good", CHAIN, good)
        # Wrong Marketing Cloud secret: the token request is refused, the raw assets fail.
        result.runs["wrong_sfmc"] = _materialize(
            "wrong_sfmc", "group:sfmc_raw",
            _chain_env(home, mc, aep, sfmc_secret=SFMC_WRONG, aep_secret=AEP_SECRET))
        # Wrong Experience Platform secret: the clean partitions exist, so only the IMS token call fails.
        result.runs["wrong_aep"] = _materialize(
            "wrong_aep", "group:aep_publish",
            _chain_env(home, mc, aep, sfmc_secret=SFMC_SECRET, aep_secret=AEP_WRONG))
        # Every access token the sandboxes issued (MC keeps them until expiry, 20 min; AEP for 24 h).
        with mc._server.lock:
            result.mc_tokens = set(mc._server.tokens)
        with aep._lock:
            result.aep_tokens = set(aep._state["tokens"])
        result.mc_stats = mc.stats()
    finally:
        mc.stop()
        aep.stop()
    yield result


def test_the_runs_took_the_real_credentials_path(chain: Chain) -> None:
    good = chain.runs["good"]
    assert good.returncode == 0, good.output[-4000:]
    assert chain.mc_tokens, "the Marketing Cloud sandbox issued no token: the env-var path was not used"
    assert chain.aep_tokens, "the Experience Platform sandbox issued no token: the env-var path was not used"
    with dg.DagsterInstance.from_config(str(chain.dagster_home)) as instance:
        for key in (["aep", "contacts"], ["segments", "segment_membership"]):
            event = instance.get_latest_materialization_event(dg.AssetKey(key))
            assert event is not None and event.asset_materialization.partition == PARTITION, key
    for name in ("wrong_sfmc", "wrong_aep"):
        run = chain.runs[name]
        assert run.returncode != 0, run.output[-4000:]
        assert "refused the credentials" in run.output, run.output[-4000:]


def test_nothing_printed_contains_a_secret_or_token(chain: Chain) -> None:
    for run in chain.runs.values():
        assert not _leaks(run.output, chain.needles), run.name


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_no_stored_file_contains_a_secret_or_token(chain: Chain) -> None:
    files = _files(chain.home)
    names = {p.name for p in files}
    assert {"runs.db", "index.db"} <= names, sorted(names)  # the SQLite run storage and event log index
    assert any(p.suffix == ".parquet" for p in files) and "warehouse.duckdb" in names
    # The compute logs are there and hold the failed runs' errors (so the error paths were really scanned).
    compute_logs = b"".join(p.read_bytes() for p in files if "compute_logs" in p.parts)
    assert compute_logs.count(b"refused the credentials") >= 2
    leaks = {str(p.relative_to(chain.home)): found for p in files if (found := _leaks(p.read_bytes(), chain.needles))}
    assert not leaks
    # Positive control: the same scan does find the tokens where they legitimately are (the sandbox's state).
    aep_state = b"".join(p.read_bytes() for p in _files(chain.aep_state))
    assert len(_leaks(aep_state, sorted(chain.aep_tokens))) == len(chain.aep_tokens)


def test_the_instance_stores_no_secret_or_token(chain: Chain) -> None:
    needles = chain.needles
    with dg.DagsterInstance.from_config(str(chain.dagster_home)) as instance:
        runs = instance.get_runs()
        assert len(runs) == 3
        n_metadata = 0
        for run in runs:
            assert not _leaks(dg.serialize_value(run), needles), run.run_id
            snapshots = [instance.get_job_snapshot(run.job_snapshot_id)]
            if run.execution_plan_snapshot_id:
                snapshots.append(instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id))
            for snap in snapshots:
                assert not _leaks(dg.serialize_value(snap), needles), run.run_id
            for entry in instance.all_logs(run.run_id):
                assert not _leaks(dg.serialize_value(entry), needles), entry.dagster_event_type
                assert not _leaks(entry.user_message or "", needles)
                metadata = {}
                if entry.asset_materialization is not None:
                    metadata.update(entry.asset_materialization.metadata)
                if entry.asset_check_evaluation is not None:
                    metadata.update(entry.asset_check_evaluation.metadata)
                for label, value in metadata.items():
                    n_metadata += 1
                    assert not _leaks(f"{label}={value!r}", needles), label
        assert n_metadata > 50  # the materialisations and check results of the chain were all looked at
        # The failed runs' errors as Dagster stored them (messages, stacks, causes).
        failures = [e for run in runs if run.status == dg.DagsterRunStatus.FAILURE
                    for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)]
        assert failures
        for entry in failures:
            error = entry.dagster_event.step_failure_data.error
            assert error is not None
            assert not _leaks(error.to_string(), needles)


def test_resource_and_client_reprs_redact_the_secret() -> None:
    mc_res = MarketingCloudResource(client_id="id", client_secret=SFMC_SECRET, auth_base_uri="http://127.0.0.1:9/")
    aep_res = ExperiencePlatformResource(client_id="id", client_secret=AEP_SECRET, org_id="ORG@AdobeOrg")
    mc_client = MarketingCloudClient("http://127.0.0.1:9/", "id", SFMC_SECRET)
    aep_client = ExperiencePlatformClient(client_id="id", client_secret=AEP_SECRET, org_id="ORG@AdobeOrg")
    for obj in (mc_res, aep_res, mc_client, aep_client):
        assert not _leaks(repr(obj), SECRETS), type(obj).__name__
        assert not _leaks(str(obj), SECRETS), type(obj).__name__
    mc_client.close()
    aep_client.close()


def _error_text(exc: BaseException) -> str:
    """Everything an operator could see of an exception: message, repr, traceback, attributes, causes."""
    return "\n".join([str(exc), repr(exc), "".join(traceback.format_exception(exc)), repr(vars(exc))])


def test_failing_client_calls_do_not_echo_secrets_or_tokens(tmp_path: Path) -> None:
    with MarketingCloudSandbox(tmp_path / "mc", start=dt.date(2026, 10, 1), end=dt.date(2026, 10, 2),
                               rows={"Contacts_DE": 5, "Campaign_Engagement": 5, "Web_Activities": 5},
                               client_secret=SFMC_SECRET) as mc, \
            ExperiencePlatformSandbox(tmp_path / "aep", client_secret=AEP_SECRET, processing_delay_s=0.01) as aep:
        disc = {k: v for k, v in aep.discovery().items() if k in ("ims_url", "platform_url", "client_id", "org_id")}
        errors: list[BaseException] = []
        # Wrong secrets: the token endpoints refuse them.
        with MarketingCloudClient(mc.url, mc.client_id, SFMC_WRONG, retry=NO_RETRY) as client:
            with pytest.raises(Exception, match="refused the credentials") as info:
                client.get_json("data/v1/customobjects", {"$search": "Contacts"})
            errors.append(info.value)
        with ExperiencePlatformClient(**disc, client_secret=AEP_WRONG, retry=NO_RETRY) as client:
            with pytest.raises(Exception, match="refused the credentials") as info:
                client.get_dataset("5ad0c0a1e0c7a5d000000001")
            errors.append(info.value)
        # Right secrets, failing calls after a token was issued: the token must not be in the error either.
        with MarketingCloudClient(mc.url, mc.client_id, SFMC_SECRET, retry=NO_RETRY) as client:
            with pytest.raises(Exception) as info:
                client.get_json("data/v1/customobjectdata/key/NO_SUCH_DE/rowset")
            errors.append(info.value)
        with ExperiencePlatformClient(**disc, client_secret=AEP_SECRET, retry=NO_RETRY) as client:
            with pytest.raises(Exception) as info:
                client.get_dataset("000000000000000000000000")
            errors.append(info.value)
        with mc._server.lock:
            tokens = set(mc._server.tokens)
        with aep._lock:
            tokens |= set(aep._state["tokens"])
    assert len(tokens) == 2
    for exc in errors:
        assert not _leaks(_error_text(exc), [*SECRETS, *tokens]), type(exc).__name__


def _personal_values(home: Path) -> dict[str, set[str]]:
    """Data extension -> the values of its personal columns in the lake (raw and clean), 5 characters or
    more (a shorter value, a two-letter first name, can occur by chance in any text)."""
    lake = ParquetLake(str(home / "lake"))
    out: dict[str, set[str]] = {}
    for de in load_config().data_extensions:
        values = out.setdefault(de.name, set())
        for partition in lake.partitions(["sfmc", "raw", de.name]):
            fields = fields_from_metadata(lake.file_metadata(["sfmc", "raw", de.name], partition)) or de.fields or ()
            for layer, columns in (("raw", personal_source_columns(de, fields)), ("clean", personal_columns(de, fields))):
                if not lake.exists(["sfmc", layer, de.name], partition):
                    continue
                frame = lake.read(["sfmc", layer, de.name], partition)
                values |= {str(v).strip() for c in columns if c in frame.columns
                           for v in frame[c].drop_nulls().to_list() if len(str(v).strip()) >= 5}
    return out


def _found_in(text: str, values: set[str]) -> list[str]:
    low = text.lower()
    return sorted(v[:1] + "…" for v in values if v.lower() in low)  # never print the value itself


def test_no_personal_value_of_any_data_extension_is_stored_or_printed(chain: Chain) -> None:
    by_de = _personal_values(chain.home)
    assert all(len(by_de[de.name]) > 10 for de in load_config().data_extensions), {k: len(v) for k, v in by_de.items()}
    values = set().union(*by_de.values())
    for run in chain.runs.values():
        assert not _found_in(run.output, values), run.name
    files = _files(chain.dagster_home)
    assert any(p.name == "runs.db" for p in files)
    leaks = {str(p.relative_to(chain.home)): found for p in files
             if (found := _found_in(p.read_bytes().decode("utf-8", "replace"), values))}
    assert not leaks
    masked_previews = 0
    with dg.DagsterInstance.from_config(str(chain.dagster_home)) as instance:
        for run in instance.get_runs():
            for entry in instance.all_logs(run.run_id):
                text = dg.serialize_value(entry)
                assert not _found_in(text, values), entry.dagster_event_type
                masked_previews += entry.asset_materialization is not None and "***" in text
    assert masked_previews >= len(by_de)  # the previews were there, and masked: the scan had something to read

"""The stack `make run` starts (sandboxes + `dg dev`), driven through Dagster's GraphQL API.

The mutations are the ones the UI sends (`launchPartitionBackfill`, ...), so a test that uses them takes
the same path as a user clicking *Materialize* / *Launch backfill*.
"""

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import requests
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
#: The test stack's daemon ticks (`daemon_ticks/sitecustomize.py`): the backfill daemon and the run queue
#: look every 2 s and 1 s instead of Dagster's 30 s and 5 s; only the waits between ticks are shorter,
#: every tick does what it does in `make run`. (The propagation test also shortens its sensor's interval.)
TICKS_ENV = {"PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent / "daemon_ticks"),
                                                         os.environ.get("PYTHONPATH")])),
             "SFMC_TEST_DAEMON_TICK_S": "2"}
DEQUEUE_INTERVAL_S = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class DagsterStack:
    url: str
    home: Path
    process: subprocess.Popen

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        resp = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
        resp.raise_for_status()
        body = resp.json()
        if body.get("errors"):
            raise AssertionError(body["errors"])
        return body["data"]

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home / "dagster_home"))

    def launch_backfill(self, asset_keys: list[str], partitions: list[str] | None = None) -> str:
        """A backfill of `partitions` of the assets (None: every partition, the UI's "All")."""
        selection = {"partitionNames": partitions} if partitions is not None else {"allPartitions": True}
        data = self.graphql(
            """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
                 __typename ... on LaunchBackfillSuccess { backfillId }
                 ... on PythonError { message } ... on InvalidSubsetError { message } } }""",
            {"p": {**selection, "assetSelection": [{"path": k.split("/")} for k in asset_keys]}},
        )["launchPartitionBackfill"]
        assert data["__typename"] == "LaunchBackfillSuccess", data
        return data["backfillId"]

    def wait_backfill(self, backfill_id: str, timeout_s: float = 300) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self.graphql(
                """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
                     ... on PartitionBackfill { status } } }""", {"id": backfill_id},
            )["partitionBackfillOrError"]["status"]
            if status not in ("REQUESTED", "CANCELING"):
                return status
            time.sleep(1.0)
        raise TimeoutError(f"backfill {backfill_id} still running after {timeout_s}s")


@contextmanager
def dagster_dev(home: Path, env: dict[str, str] | None = None) -> Iterator[DagsterStack]:
    """`dg dev` (webserver + daemon, as `make run` starts it) on a free port with `home` as SFMC_ASSETS_HOME."""
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    instance = yaml.safe_load((REPO / "deploy" / "dagster.dev.yaml").read_text())
    instance["run_coordinator"].setdefault("config", {})["dequeue_interval_seconds"] = DEQUEUE_INTERVAL_S
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(instance))
    port = free_port()
    proc_env = {**os.environ, "SFMC_ASSETS_HOME": str(home), "DAGSTER_HOME": str(dagster_home),
                "SFMC_ASSETS_EXECUTOR": "in_process", "VIRTUAL_ENV": str(BIN.parent), **TICKS_ENV, **(env or {})}
    log = (home / "dagster_dev.log").open("w")
    proc = subprocess.Popen(
        [str(BIN / "dg"), "dev", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO, env=proc_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError("dg dev exited:\n" + (home / "dagster_dev.log").read_text()[-3000:])
            try:
                if requests.get(f"{url}/server_info", timeout=2).ok:
                    stack = DagsterStack(url, home, proc)
                    _wait_for_location(stack, deadline)
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("dg dev did not start in 120 s")
            time.sleep(0.5)
        yield stack
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
        log.close()


def _wait_for_location(stack: DagsterStack, deadline: float) -> None:
    while time.monotonic() < deadline:
        entries = stack.graphql(
            """{ workspaceOrError { ... on Workspace { locationEntries { name
                 locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
        )["workspaceOrError"]["locationEntries"]
        kinds = {e["locationOrLoadError"]["__typename"] if e["locationOrLoadError"] else None for e in entries}
        if kinds == {"RepositoryLocation"}:
            return
        if "PythonError" in kinds:
            raise RuntimeError(json.dumps(entries))
        time.sleep(0.5)
    raise TimeoutError("the code location did not load")

"""Helpers of the scenarios that run the whole pipeline: a home per run, the sandboxes, older code.

A scenario compares today's code with an older commit in the same run: `checkout(ref)` exports that
commit into a temporary folder and `run_range` runs either with the same virtualenv and the same sandbox
data, each in a fresh process (bench/run_worker.py) and a fresh Dagster instance, lake and warehouse.
"""

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
#: The commit this work started from: the code the issue measured ("today" in issue #14).
BASELINE_REF = "a7cc1b3"
#: The 11 assets the baseline had (three data extensions and the segment tables). Data extensions added to
#: the bundled configuration since are left out, so that both sides do the same work.
ELEVEN = ",".join([f"{layer}/{de}" for layer in ("sfmc/raw", "sfmc/clean", "aep")
                   for de in ("contacts", "campaigns", "activities")]
                  + ["segments/contact_features", "segments/segment_membership"])


@contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """The project at git `ref`, exported (not a worktree: nothing to clean up in the repository)."""
    with tempfile.TemporaryDirectory(prefix="sfmc_bench_code_") as tmp:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", ref],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        yield Path(tmp)


_SERVE = """
import json, signal, sys, threading
from pathlib import Path
import datetime as dt
from sfmc_assets.sandboxes.experience_platform import ExperiencePlatformSandbox
from sfmc_assets.sandboxes.marketing_cloud import MarketingCloudSandbox
args = json.loads(sys.argv[1])
state = Path(args["state"])
mc = MarketingCloudSandbox(state / "mc", start=dt.date.fromisoformat(args["start"]),
                           end=dt.date.fromisoformat(args["end"]), rows=args["rows"]).start()
aep = ExperiencePlatformSandbox(state / "aep", processing_delay_s=args["delay"]).start()
(state / "discovery.tmp").write_text(json.dumps({"mc": mc.discovery(), "aep": aep.discovery()}))
(state / "discovery.tmp").rename(state / "discovery.json")
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
stop.wait()
aep.stop(); mc.stop()
"""


@contextmanager
def sandboxes(code: Path, rows: dict[str, int], start: dt.date, end: dt.date,
              processing_delay_s: float) -> Iterator[tuple[dict[str, object], dict[str, object]]]:
    """Both sandboxes of `code`, in a process of their own (each version of the client talks to the
    sandboxes of its own time: their wire details were tightened since). Yields their discovery documents.
    """
    with tempfile.TemporaryDirectory(prefix="sfmc_bench_sandboxes_") as tmp:
        payload = json.dumps({"state": tmp, "rows": rows, "start": start.isoformat(), "end": end.isoformat(),
                              "delay": processing_delay_s})
        proc = subprocess.Popen([sys.executable, "-c", _SERVE, payload], cwd=code, stdout=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONPATH": str(code)})
        discovery = Path(tmp) / "discovery.json"
        try:
            deadline = time.monotonic() + 600
            while not discovery.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the sandboxes of {code} did not start")
                time.sleep(0.2)
            found = json.loads(discovery.read_text())
            yield found["mc"], found["aep"]
        finally:
            proc.terminate()
            proc.wait(timeout=60)


def make_home(home: Path, code: Path, start: dt.date, mc: dict[str, object], aep: dict[str, object]) -> None:
    """A run home: `code`'s bundled configuration with partitions from `start`, and the sandboxes' addresses."""
    config = yaml.safe_load((code / "sfmc_assets" / "config" / "data_extensions.yaml").read_text())
    config["start_date"] = start.isoformat()
    (home / "dagster_home").mkdir(parents=True, exist_ok=True)
    (home / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    (home / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (home / "sandboxes").mkdir(exist_ok=True)
    (home / "sandboxes" / "marketing_cloud.json").write_text(json.dumps(
        {k: v for k, v in mc.items() if k != "sandbox_pid"}))
    (home / "sandboxes" / "experience_platform.json").write_text(json.dumps(aep))


def run_range(home: Path, code: Path, start: dt.date, end: dt.date, *, executor: str = "multiprocess",
              start_method: str | None = None, bytecode: bool = True, select: str = ELEVEN,
              max_concurrent: int | None = None) -> dict[str, object]:
    """One run of `select` over [start, end] with `code`, in a fresh process; its result line.

    `bytecode=False` imports everything from source, as a virtualenv installed without compiled
    bytecode does where PYTHONDONTWRITEBYTECODE is set (an empty pycache prefix, nothing written).
    Otherwise `code`'s package is compiled first, the exported older commit's as today's (`make test`
    compiles it): where PYTHONDONTWRITEBYTECODE is set, each process would compile it again.
    """
    if bytecode:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(code / "sfmc_assets")],
                       stdout=subprocess.DEVNULL, check=True)
    env = {**os.environ, "SFMC_ASSETS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home"),
           "SFMC_ASSETS_CONFIG": str(home / "config.yaml"), "SFMC_ASSETS_EXECUTOR": executor,
           "PYTHONPATH": str(code)}
    env.pop("SFMC_ASSETS_START_METHOD", None)
    env.pop("SFMC_ASSETS_MAX_CONCURRENT", None)
    if max_concurrent:
        env["SFMC_ASSETS_MAX_CONCURRENT"] = str(max_concurrent)
    if start_method:
        env["SFMC_ASSETS_START_METHOD"] = start_method
    env.pop("PYTHONPYCACHEPREFIX", None)
    if not bytecode:
        env["PYTHONPYCACHEPREFIX"] = str(home / "no_pycache")
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    payload = json.dumps({"start": start.isoformat(), "end": end.isoformat(), "select": select})
    out = subprocess.run([sys.executable, str(REPO / "bench" / "run_worker.py")], input=payload, cwd=code, env=env,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"run {start}..{end} with {code} failed:\n{out.stderr[-4000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if not result["success"]:
        raise RuntimeError(f"run {start}..{end} with {code} did not succeed: {result['failures']}")
    return result


def days(start: dt.date, n: int) -> tuple[dt.date, dt.date]:
    """The first and last of `n` days from `start`."""
    return start, start + dt.timedelta(days=n - 1)

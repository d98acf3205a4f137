"""Helpers shared by the scenarios: sandbox processes, worker processes, machine description."""

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def machine() -> dict[str, object]:
    return {
        "date": time.strftime("%Y-%m-%d"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],  # others' work on the machine, at the time
    }


@contextmanager
def _serve(extra_args: list[str], discovery_name: str, state_dir: Path | None,
           timeout_s: float) -> Iterator[dict[str, object]]:
    """`python -m sfmc_assets.sandboxes serve` in its own process (so it does not share the client's GIL).

    Yields its discovery file's content plus `sandbox_pid`, so a scenario can see the sandbox's CPU time.
    """
    with tempfile.TemporaryDirectory(prefix="sfmc_bench_") as tmp:
        state = state_dir or Path(tmp)
        args = [sys.executable, "-m", "sfmc_assets.sandboxes", "serve", "--state-dir", str(state), *extra_args]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        discovery = state / discovery_name
        try:
            deadline = time.monotonic() + timeout_s
            while not discovery.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the sandbox did not start ({discovery_name})")
                time.sleep(0.2)
            yield {**json.loads(discovery.read_text()), "sandbox_pid": proc.pid}
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@contextmanager
def sandbox_process(rows: dict[str, int], start: str, end: str, state_dir: Path | None = None,
                    extra: Sequence[str] = ()) -> Iterator[dict[str, object]]:
    """The Marketing Cloud sandbox alone, with `rows` per data extension key over [start, end)."""
    args = ["--no-experience-platform", "--start", start, "--end", end, *extra]
    for key, n in rows.items():
        args += ["--rows", f"{key}={n}"]
    with _serve(args, "marketing_cloud.json", state_dir, timeout_s=600) as discovery:
        yield discovery


@contextmanager
def experience_platform_process() -> Iterator[dict[str, object]]:
    """The Experience Platform sandbox alone."""
    with _serve(["--no-marketing-cloud"], "experience_platform.json", None, timeout_s=120) as discovery:
        yield discovery


def run_worker(module: str, payload: dict[str, object], args: Sequence[str] = ()) -> dict[str, object]:
    """Run `python -m <module> [args]` with a JSON payload on stdin; it prints one JSON result line."""
    out = subprocess.run([sys.executable, "-m", module, *args], input=json.dumps(payload), capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{module} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def save(name: str, result: dict[str, object]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far (Linux `/proc`)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

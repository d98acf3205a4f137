"""The image's install, exercised in CI the way the Dockerfile runs it (no container engine here).

The build context is staged as Docker stages it (the repository minus `.dockerignore`), the Dockerfile's
install step runs there (the same script, `scripts/install-locked.sh`, with the Dockerfile's extras) into a
fresh venv, and the Dockerfile's own CMD then serves the code location from that venv, with
`SFMC_ASSETS_EXECUTOR=k8s`: Dagster loads every definition through the gRPC server, as the webserver and
the daemon do from the chart's user deployment.
"""

import fnmatch
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath

import pytest

from sfmc_assets_tests.e2e.stack import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text(encoding="utf-8")


def _ignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _ignored(rel: PurePosixPath, patterns: list[str]) -> bool:
    """Docker's rule for the plain patterns `.dockerignore` keeps to: a match on the path or a parent."""
    prefixes = [PurePosixPath(*rel.parts[: i + 1]) for i in range(len(rel.parts))]
    for pattern in patterns:
        anywhere = pattern.removeprefix("**/")
        for prefix in prefixes:
            if fnmatch.fnmatchcase(str(prefix), pattern) or (
                    pattern.startswith("**/") and fnmatch.fnmatchcase(prefix.name, anywhere)):
                return True
    return False


def stage_context(dest: Path) -> Path:
    """Copy the files Docker would send as the build context (`COPY . /app`)."""
    patterns = _ignore_patterns()
    for root, dirs, files in os.walk(REPO):
        base = PurePosixPath(Path(root).relative_to(REPO).as_posix())
        dirs[:] = [d for d in dirs if not _ignored(base / d, patterns)]  # never walk .venv, .git, ...
        for name in files:
            if not _ignored(base / name, patterns):
                (dest / base).mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(root) / name, dest / base / name)
    return dest


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def dockerfile_cmd() -> list[str]:
    return json.loads(re.findall(r"^CMD (\[.*\])$", DOCKERFILE, re.MULTILINE)[-1])


def test_dockerignore_keeps_what_the_build_needs_and_drops_the_rest() -> None:
    patterns = _ignore_patterns()
    for needed in ("pyproject.toml", "requirements.lock", "README.md", "setup.cfg", "scripts/install-locked.sh",
                   "sfmc_assets/definitions.py", "sfmc_assets/config/data_extensions.yaml"):
        assert not _ignored(PurePosixPath(needed), patterns), needed
    for dropped in (".venv/bin/python", ".git/HEAD", "sfmc_assets_tests/conftest.py",
                    "sfmc_assets/lib/__pycache__/lake.cpython-311.pyc", "sfmc_assets.egg-info/PKG-INFO"):
        assert _ignored(PurePosixPath(dropped), patterns), dropped


def test_the_image_install_serves_the_code_location_with_the_k8s_executor(tmp_path: Path) -> None:
    install = re.search(r"bash (scripts/install-locked\.sh) (\S+) \"\$\{EXTRAS\}\"", DOCKERFILE)
    extras = re.search(r"^ARG EXTRAS=(\S+)$", DOCKERFILE, re.MULTILINE)
    assert install and extras, "the Dockerfile no longer installs with scripts/install-locked.sh"
    app, venv = stage_context(tmp_path / "app"), tmp_path / "venv"
    started = time.monotonic()
    out = subprocess.run(["bash", install.group(1), str(venv), extras.group(1)], cwd=app, capture_output=True,
                         text=True, timeout=400,
                         env={**os.environ, "UV": str(Path(sys.executable).parent / "uv"), "PYTHON": sys.executable})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "all pinned by requirements.lock" in out.stdout
    print(f"install from the lock: {time.monotonic() - started:.1f} s")
    python = str(venv / "bin" / "python")
    probe = ("import importlib.util as u, sfmc_assets; print(sfmc_assets.__file__); "
             "print(*(bool(u.find_spec(m)) for m in ('dagster_k8s', 's3fs', 'dagster_postgres', 'pytest', 'dlt')))")
    found = subprocess.run([python, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    location, flags = found.splitlines()
    assert Path(location).is_relative_to(app)  # editable, from the image's source tree (pyproject beside it)
    assert flags.split() == ["True", "True", "True", "False", "False"]  # extras in, dev and bench tools out

    port = free_port()
    cmd = dockerfile_cmd()
    cmd[cmd.index("-p") + 1], cmd[cmd.index("-h") + 1] = str(port), "127.0.0.1"
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "SFMC_ASSETS_EXECUTOR": "k8s",
           "SFMC_ASSETS_HOME": str(tmp_path / "home")}
    env.pop("VIRTUAL_ENV", None)
    server = subprocess.Popen(cmd, cwd=app, env=env, stdout=(tmp_path / "server.log").open("w"),
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        # The image's HEALTHCHECK command, run once the port is open: each run is a Python start-up with
        # Dagster's import, too heavy to poll with every second while the server itself starts.
        health = [str(venv / "bin" / "dagster"), "api", "grpc-health-check", "-p", str(port)]
        while not _accepts(port) or subprocess.run(health, capture_output=True, env=env).returncode != 0:
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the code server did not become healthy"
            time.sleep(0.5)
        check = subprocess.run([str(venv / "bin" / "dagster"), "definitions", "validate", "--grpc-host", "127.0.0.1",
                                "--grpc-port", str(port)], cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=180)
        assert check.returncode == 0 and "passed validation" in check.stdout + check.stderr, check.stderr[-3000:]
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)

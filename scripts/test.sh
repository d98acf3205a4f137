#!/usr/bin/env bash
# README command 2 (`make test`), also what CI runs (.ci/run): lint, definitions validation, the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
# Every process (each run, each step) imports the project from bytecode, also where PYTHONDONTWRITEBYTECODE
# is set (Python then compiles the source again in each process): compile the current source once here.
"$BIN/python" -m compileall -q sfmc_assets bench >/dev/null
# Temporary files on tmpfs where the machine has one with room (containers often get 64 MB): the suite's
# Dagster instances, lakes and warehouses are files, and SQLite commits each event to disk.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ] \
   && [ "$(df -Pk /dev/shm | awk 'NR==2 {print $4}')" -ge $((4 * 1024 * 1024)) ]; then
  export TMPDIR=/dev/shm
fi
# Tests never touch the developer's ./.sfmc_assets: each run gets its own home.
SFMC_ASSETS_HOME="$(mktemp -d -t sfmc_assets_test.XXXXXX)"
export SFMC_ASSETS_HOME
export DAGSTER_HOME="$SFMC_ASSETS_HOME/dagster_home"
mkdir -p "$DAGSTER_HOME"
printf 'telemetry:\n  enabled: false\n' > "$DAGSTER_HOME/dagster.yaml"
PG_DIR="$(mktemp -d -t sfmc_pg.XXXXXX)"   # its own dir: user postgres cannot enter $SFMC_ASSETS_HOME (mode 700)
trap 'bash scripts/ci/postgres.sh stop "$PG_DIR" || true; rm -rf "$SFMC_ASSETS_HOME" "$PG_DIR"' EXIT

echo "== ruff"
"$BIN/ruff" check sfmc_assets sfmc_assets_tests bench
echo "== dg check defs (the project as dg loads it) and workspace.yaml (as dagster dev -w loads it)"
VIRTUAL_ENV="$PWD/.venv" "$BIN/dg" check defs
"$BIN/dagster" definitions validate -w workspace.yaml
echo "== postgres (throw-away server for sfmc_assets_tests/postgres; Debian's package, installed if missing)"
PG_ENV="$(bash scripts/ci/postgres.sh start "$PG_DIR")"
eval "$PG_ENV"
echo "== chromium (Debian's package, for the browser test; installed if missing)"
bash scripts/ci/chromium.sh
# pytest's temp folders live in this run's home: concurrent runs never rotate each other's away.
export PYTEST_ADDOPTS="--basetemp=$SFMC_ASSETS_HOME/pytest ${PYTEST_ADDOPTS:-}"
export SFMC_REQUIRE_BROWSER=1   # here a missing browser fails the browser test instead of skipping it
# CI's screenshots go to the run's home; docs/screenshots/ changes only when a developer runs the test.
export SFMC_SCREENSHOTS_DIR="${SFMC_SCREENSHOTS_DIR:-$SFMC_ASSETS_HOME/screenshots}"
echo "== pytest $*"
# More workers than cores: each end-to-end test waits on its own Dagster stack or Chromium (their processes
# use the CPU, not the test's worker); each starts a worker's block of tests (WORKER_HEADS in
# sfmc_assets_tests/conftest.py) so they run side by side while the other tests share the cores.
# Arguments (paths, -k, ...) are passed to pytest as they are.
"$BIN/pytest" -n "${PYTEST_WORKERS:-6}" --dist worksteal "$@"

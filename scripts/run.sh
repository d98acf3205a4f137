#!/usr/bin/env bash
# README command 1 (`make run`): start the local sandboxes (unless real credentials are set) and the
# Dagster UI. Everything written goes under $SFMC_ASSETS_HOME (default ./.sfmc_assets).
set -euo pipefail
cd "$(dirname "$0")/.."
export SFMC_ASSETS_HOME="${SFMC_ASSETS_HOME:-$PWD/.sfmc_assets}"
export DAGSTER_HOME="${DAGSTER_HOME:-$SFMC_ASSETS_HOME/dagster_home}"
HOST="${DAGSTER_HOST:-127.0.0.1}"
PORT="${DAGSTER_PORT:-3000}"
BIN=.venv/bin
# Every process (each run, each step) imports the project from bytecode, also where PYTHONDONTWRITEBYTECODE
# is set (Python then compiles the source again in each process): compile the current source once here.
"$BIN/python" -m compileall -q sfmc_assets >/dev/null
mkdir -p "$DAGSTER_HOME"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp deploy/dagster.dev.yaml "$DAGSTER_HOME/dagster.yaml"

flags=()
[ -n "${SFMC_CLIENT_ID:-}" ] && flags+=(--no-marketing-cloud)
[ -n "${AEP_CLIENT_ID:-}" ] && flags+=(--no-experience-platform)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

if [ "${#flags[@]}" -lt 2 ]; then
  rm -f "$SFMC_ASSETS_HOME"/sandboxes/*.json
  "$BIN/python" -m sfmc_assets.sandboxes serve "${flags[@]}" &
  pids+=($!)
  for _ in $(seq 1 600); do
    ready=1
    [ -n "${SFMC_CLIENT_ID:-}" ] || [ -f "$SFMC_ASSETS_HOME/sandboxes/marketing_cloud.json" ] || ready=0
    [ -n "${AEP_CLIENT_ID:-}" ] || [ -f "$SFMC_ASSETS_HOME/sandboxes/experience_platform.json" ] || ready=0
    [ "$ready" = 1 ] && break
    kill -0 "${pids[0]}" 2>/dev/null || { echo "the sandboxes failed to start" >&2; exit 1; }
    sleep 0.2
  done
fi

echo
echo "  Dagster UI: http://$HOST:$PORT   (state in $SFMC_ASSETS_HOME; Ctrl-C stops everything)"
echo
export VIRTUAL_ENV="$PWD/.venv"   # the project's venv: dg uses it for the code server
"$BIN/dg" dev -h "$HOST" -p "$PORT" &
pids+=($!)
wait "${pids[-1]}"

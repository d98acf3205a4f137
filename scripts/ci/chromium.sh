#!/usr/bin/env bash
# Installs Debian's Chromium for the browser end-to-end test (sfmc_assets_tests/browser), unless it is
# already there. Playwright drives this binary through `executable_path`; `playwright install` (a browser
# download) is never run. Idempotent; needs root (or sudo) and apt.
set -euo pipefail
CHROMIUM="${SFMC_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "chromium.sh: $CHROMIUM is missing and this is not root (no sudo): install Debian's chromium" >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium.sh: $CHROMIUM is missing and apt-get is not available: install Chromium by hand" >&2
  exit 1
fi
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
"$CHROMIUM" --version

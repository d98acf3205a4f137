#!/usr/bin/env bash
# Installs the code location into a fresh virtual environment from requirements.lock: the one recipe the
# image (Dockerfile) and CI (sfmc_assets_tests/deploy/test_image_install.py) both run, so they cannot drift.
#
#   scripts/install-locked.sh <venv dir> [extras]        extras default: k8s,cloud
#
# Run it from the project's source tree (the image's /app). It:
#   1. creates <venv dir> with uv (`$UV`, default `uv`) for `$PYTHON` (default python3);
#   2. installs the project EDITABLE with the extras, every version pinned by requirements.lock (as uv
#      constraints: only what the runtime and the extras need is installed, not the dev/bench tools).
#      Editable on purpose: the code server runs from the source tree, where Dagster's
#      `load_from_defs_folder` finds pyproject.toml at run time (a plain wheel install would not);
#   3. fails if any installed distribution is missing from the lock or at another version than pinned
#      (the lock must be re-resolved with `make lock` after a dependency change).
set -euo pipefail

[ $# -ge 1 ] || { echo "usage: $0 <venv dir> [extras]" >&2; exit 2; }
VENV="$1"
EXTRAS="${2:-k8s,cloud}"
UV="${UV:-uv}"
PYTHON="${PYTHON:-python3}"
[ -f pyproject.toml ] && [ -f requirements.lock ] || { echo "$0: run it from the project's source tree" >&2; exit 2; }

"$UV" venv --quiet --python "$PYTHON" "$VENV"
"$UV" pip install --quiet --python "$VENV/bin/python" --constraint requirements.lock --editable ".[$EXTRAS]"

"$VENV/bin/python" - requirements.lock <<'PY'
"""Every installed distribution (but the project) is pinned by the lock, at that version."""
import re
import sys
from importlib.metadata import distributions


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


pins = {}
for line in open(sys.argv[1], encoding="utf-8"):
    match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;#]+)", line)
    if match:
        pins[norm(match.group(1))] = match.group(2)
installed = {norm(d.metadata["Name"]): d.version for d in distributions()}
installed.pop("sfmc-assets", None)
drift = sorted(f"{n}=={v} (lock: {pins.get(n, 'absent')})" for n, v in installed.items() if pins.get(n) != v)
if drift:
    sys.exit("installed but not pinned by requirements.lock at that version (run `make lock`):\n  "
             + "\n  ".join(drift))
print(f"install-locked: {len(installed)} distributions, all pinned by requirements.lock")
PY

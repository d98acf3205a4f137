"""Where the project writes things, resolved from the environment in one place.

Everything the project writes at run time (Dagster home, the Parquet lake, the warehouse, sandbox state)
goes under one folder, `SFMC_ASSETS_HOME`, so a checkout stays clean and `make clean` removes it all.
"""

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
_REPO_DIR = PACKAGE_DIR.parent


def project_home() -> Path:
    """The folder for all run-time state: `$SFMC_ASSETS_HOME`, else `<repo>/.sfmc_assets`.

    A non-editable install has no repository around it, so it falls back to the working directory.
    """
    env = os.environ.get("SFMC_ASSETS_HOME")
    if env:
        return Path(env).expanduser().resolve()
    base = _REPO_DIR if (_REPO_DIR / "pyproject.toml").exists() else Path.cwd()
    return base / ".sfmc_assets"


def sandbox_dir() -> Path:
    """State of the local Marketing Cloud and Experience Platform sandboxes and their discovery files."""
    return project_home() / "sandboxes"


def token_cache_dir() -> Path | None:
    """Where OAuth tokens are shared by the processes of this deployment (encrypted, one file per client).

    `$SFMC_ASSETS_TOKEN_CACHE`, else `$SFMC_ASSETS_HOME/tokens`; `off` keeps each process's token to
    itself (every step process then requests its own).
    """
    env = os.environ.get("SFMC_ASSETS_TOKEN_CACHE", "").strip()
    if env.lower() == "off":
        return None
    return Path(env).expanduser() if env else project_home() / "tokens"


def lake_uri() -> str:
    """Base location of the Parquet lake: any fsspec/UPath URI (`s3://bucket/prefix`) or a local path."""
    return os.environ.get("SFMC_ASSETS_LAKE_URI") or str(project_home() / "lake")


def warehouse_path() -> Path:
    """The DuckDB file holding the segment-ready tables."""
    env = os.environ.get("SFMC_ASSETS_WAREHOUSE")
    return Path(env).expanduser() if env else project_home() / "warehouse.duckdb"


def config_path() -> Path:
    """The data extension configuration: `$SFMC_ASSETS_CONFIG`, else the bundled sandbox configuration."""
    env = os.environ.get("SFMC_ASSETS_CONFIG")
    return Path(env).expanduser() if env else PACKAGE_DIR / "config" / "data_extensions.yaml"

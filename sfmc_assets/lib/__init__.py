"""Plain Python (no Dagster objects): clients, configuration, Polars transforms, validation, storage.

Everything here is importable and testable without a Dagster instance; `sfmc_assets.defs` wires it into
assets, checks, schedules and resources.
"""

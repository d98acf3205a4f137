"""Dagster wiring: assets, checks, schedules and resources built from the configuration.

Each subpackage is one layer of the one-way flow: Marketing Cloud extract -> clean (Polars + pandera
gates) -> publish to Experience Platform / segment tables. `sfmc_assets.definitions` assembles them.
"""

"""`python -m sfmc_assets ...`: the same command line as the `sfmc-assets` script (`cli.py`)."""

from sfmc_assets.cli import main

main(prog_name="sfmc-assets")

"""Imported once by the step executor's fork server (`defs/executors.py`), never by user code.

It imports what every step uses, builds the project's definitions and resolves their jobs the way a step
process looks them up, so each step process forked from the server starts with all of it in memory:
`sfmc_assets.definitions.defs()` returns the definitions built here (cached per configuration file and
environment, so a changed file is rebuilt). On 2 cores a step process then starts in a fraction of a
second instead of several seconds (docs/benchmarks.md).
"""

from dagster._core.definitions.reconstruct import ReconstructableRepository

from sfmc_assets.definitions import defs

for _job in defs().get_repository_def().get_all_jobs():
    ReconstructableRepository.for_module("sfmc_assets.definitions", "defs").get_definition().get_job(_job.name)

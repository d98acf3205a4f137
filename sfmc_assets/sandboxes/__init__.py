"""Local Marketing Cloud and Experience Platform sandboxes: the embedded default and the test target.

Real HTTP servers on loopback that speak the vendors' wire formats, with realistic,
deterministic data and fault knobs. They live apart from the production clients (`sfmc_assets.lib`),
which talk to them exactly as they talk to the real services. `python -m sfmc_assets.sandboxes serve`
runs both and publishes their addresses in discovery files that the resources read when no credentials
are set.
"""

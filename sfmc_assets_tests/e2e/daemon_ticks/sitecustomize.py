"""Shortens the backfill daemon's tick in the test stack's `dagster-daemon` process.

Dagster's backfill daemon looks at running backfills every 30 s, a constant
(`dagster._daemon.controller.DEFAULT_DAEMON_INTERVAL_SECONDS`) that no instance setting changes. A backfill
whose layers run one after another waits a tick between them, so a test of a three-layer backfill spent
most of its minutes sleeping. The stack puts this folder on PYTHONPATH; Python imports `sitecustomize` at
start-up, and in the daemon process only, the tick becomes `SFMC_TEST_DAEMON_TICK_S` seconds. What the
daemon does on each tick is unchanged.
"""

import os
import sys

if "dagster._daemon" in sys.orig_argv and os.environ.get("SFMC_TEST_DAEMON_TICK_S"):
    import dagster._daemon.controller as _controller

    _controller.DEFAULT_DAEMON_INTERVAL_SECONDS = float(os.environ["SFMC_TEST_DAEMON_TICK_S"])

"""`python -m sfmc_assets.sandboxes serve`: run both sandboxes until interrupted.

Each sandbox publishes a discovery file (address and sandbox credentials) under
`$SFMC_ASSETS_HOME/sandboxes/`; the Dagster resources read it when no real credentials are set. The
files are removed on exit so a stale address is never used.
"""

import argparse
import contextlib
import datetime as dt
import json
import os
import signal
import sys
import threading
from pathlib import Path

from sfmc_assets.lib import settings


def _write_discovery(path: Path, payload: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    os.chmod(tmp, 0o600)  # holds the sandbox's (not a real) secret; keep it private anyway
    tmp.replace(path)


def _date(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


def _first_partition() -> dt.date | None:
    """The first daily partition of the configuration in force, so that every partition a user sees in
    the UI has sandbox data (None when the configuration cannot be read: the sandbox's own default)."""
    from sfmc_assets.lib.config import load_config

    try:
        config = load_config()
    except (OSError, ValueError) as exc:
        print(f"sandbox data starts 30 days ago: the configuration could not be read ({exc})", file=sys.stderr)
        return None
    return min(config.start_date_of(de) for de in config.data_extensions)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sfmc_assets.sandboxes", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the Marketing Cloud and Experience Platform sandboxes")
    serve.add_argument("--state-dir", type=Path, default=None, help="default: $SFMC_ASSETS_HOME/sandboxes")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--mc-port", type=int, default=int(os.environ.get("SFMC_SANDBOX_PORT", "0")))
    serve.add_argument("--aep-port", type=int, default=int(os.environ.get("AEP_SANDBOX_PORT", "0")))
    serve.add_argument("--start", type=_date, default=None,
                       help="first UTC day of sandbox data (default: the configuration's first partition)")
    serve.add_argument("--end", type=_date, default=None, help="day after the last UTC day of sandbox data")
    serve.add_argument("--rows", action="append", default=[], metavar="KEY=N",
                       help="rows of a data extension, e.g. Campaign_Engagement=1000000 (repeatable)")
    serve.add_argument("--sends-per-day", type=int, default=None,
                       help="e-mail sends a day in the tracking events (opens, clicks... follow from them)")
    serve.add_argument("--no-marketing-cloud", action="store_true", help="real SFMC credentials are in use")
    serve.add_argument("--no-experience-platform", action="store_true", help="real AEP credentials are in use")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    state_dir: Path = args.state_dir or settings.sandbox_dir()
    state_dir.mkdir(parents=True, exist_ok=True)
    started: list[tuple[object, Path]] = []
    if not args.no_marketing_cloud:
        from sfmc_assets.sandboxes.marketing_cloud import MarketingCloudSandbox

        rows = {k: int(v) for k, v in (item.split("=", 1) for item in args.rows)}
        tracking = {"sends_per_day": args.sends_per_day} if args.sends_per_day else {}
        mc = MarketingCloudSandbox(state_dir / "marketing_cloud", host=args.host, port=args.mc_port,
                                   start=args.start or _first_partition(), end=args.end, rows=rows, **tracking).start()
        started.append((mc, state_dir / "marketing_cloud.json"))
        print(f"Marketing Cloud sandbox:       {mc.url}", flush=True)
    if not args.no_experience_platform:
        from sfmc_assets.sandboxes.experience_platform import ExperiencePlatformSandbox

        aep = ExperiencePlatformSandbox(state_dir / "experience_platform", host=args.host,
                                        port=args.aep_port).start()
        started.append((aep, state_dir / "experience_platform.json"))
        print(f"Experience Platform sandbox:   {aep.url}", flush=True)
    for sandbox, path in started:
        _write_discovery(path, sandbox.discovery())  # type: ignore[attr-defined]

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        for sandbox, path in started:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            sandbox.stop()  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Serve the Experience Platform sandbox standalone: ``python -m sfmc_assets.sandboxes.experience_platform``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .server import ExperiencePlatformSandbox


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=Path(".aep_sandbox"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--processing-delay", type=float, default=0.2)
    args = parser.parse_args(argv)
    sandbox = ExperiencePlatformSandbox(
        args.state_dir, host=args.host, port=args.port, processing_delay_s=args.processing_delay
    )
    # Print the connection details before blocking so a wrapper script can pick them up.
    print(
        json.dumps({"url": f"http://{args.host}:{args.port}", "state_dir": str(args.state_dir)}), flush=True
    )
    sandbox.serve_forever()


if __name__ == "__main__":
    main()

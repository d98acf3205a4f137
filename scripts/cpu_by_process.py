"""Where a command's CPU goes, counting every process it starts (Linux `/proc`).

`time make test` counts only the processes its shell reaps: the daemon, webserver, code server and runs of a
`dg dev` stack killed by its process group, Chromium and PostgreSQL are missed. This samples every process's
own CPU twice a second while the command runs and prints the totals by kind:

    python3 scripts/cpu_by_process.py bash scripts/test.sh
    python3 scripts/cpu_by_process.py --top 20 bash scripts/test.sh   # and the 20 heaviest processes

Processes that live under half a second are missed unless their parent reaps them.
"""

import collections
import os
import re
import subprocess
import sys
import threading
import time

KINDS = [  # first match wins
    ("dg dev: run (spawned by the code server)", r"multiprocessing\.spawn"),
    ("step processes (forkserver)", r"multiprocessing\.forkserver|multiprocessing\.popen"),
    ("dg dev: daemon", r"dagster\._daemon"),
    ("dg dev: webserver", r"dagster_webserver"),
    ("dg dev: code server", r"code-server start|api grpc"),
    ("dg dev", r"bin/dg dev"),
    ("chromium", r"chrom"),
    ("postgres", r"postgres"),
    ("bench", r"-m bench|/bench/"),
    ("dagster CLI", r"bin/dagster |-m dagster "),
    ("pytest workers", r"execnet|import sys;exec"),
    ("pytest", r"pytest"),
]


def _sample(seen: dict[tuple[int, str], list], stop: threading.Event) -> None:
    tick = os.sysconf("SC_CLK_TCK")
    first = True
    while not stop.is_set():
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                cpu = (int(fields[11]) + int(fields[12])) / tick
                key = (int(pid), fields[19])  # pid and start time: a reused pid is another process
                if key not in seen:
                    with open(f"/proc/{pid}/cmdline") as f:
                        seen[key] = [f.read().replace("\0", " "), cpu if first else 0.0, cpu]
                seen[key][2] = cpu
            except (OSError, IndexError):
                pass
        first = False
        stop.wait(0.5)


def main() -> int:
    args = sys.argv[1:]
    top = int(args[1]) if args[:1] == ["--top"] else 0
    command = args[2:] if top else args
    seen: dict[tuple[int, str], list] = {}
    stop = threading.Event()
    sampler = threading.Thread(target=_sample, args=(seen, stop), daemon=True)
    sampler.start()
    started = time.monotonic()
    code = subprocess.call(command)
    wall = time.monotonic() - started
    stop.set()
    sampler.join()
    totals: collections.Counter[str] = collections.Counter()
    counts: collections.Counter[str] = collections.Counter()
    for cmd, before, last in seen.values():
        kind = next((name for name, pattern in KINDS if re.search(pattern, cmd)), "other")
        totals[kind] += last - before
        counts[kind] += 1
    print(f"\n{sum(totals.values()):.0f} CPU-s in {wall:.0f} s ({os.cpu_count()} CPUs)")
    for kind, cpu in totals.most_common():
        print(f"{cpu:8.1f} CPU-s  {counts[kind]:5d} processes  {kind}")
    for cmd, before, last in sorted(seen.values(), key=lambda v: v[1] - v[2])[:top]:
        print(f"{last - before:8.1f} CPU-s  {cmd[:150]}")
    return code


if __name__ == "__main__":
    sys.exit(main())

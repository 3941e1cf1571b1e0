"""The running broker's statistics and memory, read on its node.

    python3 -m server.status     # one JSON object: pid, VmRSS/VmHWM (kB), the broker's counters

Asks the broker (SIGUSR1) to write its statistics now, waits for the file to change, and reads
the broker's memory from /proc/<pid>/status: resident now (VmRSS) and at its peak (VmHWM).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from server.state_files import pid_file, state_dir, stats_file

WAIT_S = 3.0


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in kB, from /proc."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0])
    return out


def fresh_stats(directory: Path, pid: int) -> dict:
    """Ask the broker for its statistics and read them once written."""
    path = stats_file(directory)
    before = path.stat().st_mtime_ns if path.exists() else 0
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_mtime_ns != before:
            break
        time.sleep(0.05)
    return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="server.status", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-dir", help="the broker's state directory (default: the node's)")
    args = parser.parse_args(argv)
    directory = state_dir(args.state_dir)
    try:
        pid = int(pid_file(directory).read_text())
        report = {"pid": pid, **memory_kb(pid), "stats": fresh_stats(directory, pid)}
    except (OSError, ValueError) as exc:
        print(f"server.status: no running broker found in {directory}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

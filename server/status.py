"""The running broker's statistics and memory, read on its node.

    python3 -m server.status            # one JSON object: pid, VmRSS/VmHWM (kB), the broker's counters
    python3 -m server.status --restart  # restart the broker's service first (SIGHUP), once it is back

Asks the broker (SIGUSR1) to write its statistics now, waits for the file to change, and reads
the broker's memory from /proc/<pid>/status: resident now (VmRSS) and at its peak (VmHWM).
With --restart, the broker restarts its service (server.broker: state forgotten, key re-read) and
the report comes once the new start has written its statistics: the broker answers again.
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


def read_stats(path: Path) -> dict:
    """The statistics file, or nothing while it is missing or being replaced."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def stats_after(directory: Path, pid: int, sig: signal.Signals, stamp: str) -> dict | None:
    """Signal the broker and wait until its statistics carry a new `stamp` (written anew since): them,
    or None if they did not come within WAIT_S."""
    path = stats_file(directory)
    before = read_stats(path).get(stamp)
    os.kill(pid, sig)
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if (stats := read_stats(path)).get(stamp) not in (None, before):
            return stats
        time.sleep(0.02)
    return None


def fresh_stats(directory: Path, pid: int) -> dict:
    """Ask the broker for its statistics (SIGUSR1) and read them once written."""
    return stats_after(directory, pid, signal.SIGUSR1, "time") or json.loads(stats_file(directory).read_text())


def restarted(directory: Path, pid: int) -> dict:
    """Restart the broker's service (SIGHUP) and wait until its new start has written its statistics."""
    stats = stats_after(directory, pid, signal.SIGHUP, "started")
    if stats is None:
        raise OSError(f"the broker did not start again within {WAIT_S:g}s of SIGHUP")
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="server.status", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-dir", help="the broker's state directory (default: the node's)")
    parser.add_argument("--restart", action="store_true",
                        help="restart the broker's service (its state forgotten), report once it is back")
    args = parser.parse_args(argv)
    directory = state_dir(args.state_dir)
    try:
        pid = int(pid_file(directory).read_text())
        stats = restarted(directory, pid) if args.restart else fresh_stats(directory, pid)
        report = {"pid": pid, **memory_kb(pid), "stats": stats}
    except (OSError, ValueError) as exc:
        print(f"server.status: no running broker found in {directory}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

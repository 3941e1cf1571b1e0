"""What this node's processes hold: memory and open file descriptors, for `make soak`.

    python3 -m node.process_stats    # {"processes": [{"pid": N, "name": "server.broker", "rss_kb": N, "fds": N}, ...]}

Every process in this node's network namespace but this one (netns nodes share one PID namespace,
so the namespace says whose a process is; in a container it is all of them). A Python program is
named by its module (`python3 -m MODULE`; the netns fork server's children name themselves so),
anything else by its executable. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def _name(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as f:
        comm = f.read().strip()
    if not comm.startswith("python"):
        return comm  # a program, or a Python forked by the netns fork server: it names itself so
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    return argv[argv.index("-m") + 1] if "-m" in argv[:-1] else comm


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0  # a kernel thread, or a zombie


def processes() -> list[dict]:
    """This node's processes (but this one), by pid."""
    mine = os.readlink("/proc/self/ns/net")
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        try:
            if os.readlink(f"/proc/{pid}/ns/net") != mine:
                continue
            found.append({"pid": pid, "name": _name(pid), "rss_kb": _rss_kb(pid),
                          "fds": len(os.listdir(f"/proc/{pid}/fd"))})
        except (OSError, ValueError):
            continue  # gone meanwhile
    return sorted(found, key=lambda p: p["pid"])


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="node.process_stats", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    print(json.dumps({"processes": processes()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

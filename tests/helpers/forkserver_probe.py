"""A program for tests/unit/test_forkserver.py to run through the fork server: says where and how it runs.

    python3 -m tests.helpers.forkserver_probe [--exit N] [--raise] [--sleep S] [--stderr TEXT]
                                              [--write FILE] [--list DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tests.helpers.forkserver_probe")
    parser.add_argument("--exit", type=int, default=0)
    parser.add_argument("--raise", dest="raise_", action="store_true")
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--stderr", default="")
    parser.add_argument("--write", help="write this file first (its name as its text)")
    parser.add_argument("--list", help="say what this directory holds")
    args = parser.parse_args(argv)
    if args.write:
        with open(args.write, "w") as f:
            f.write(args.write)
    time.sleep(args.sleep)
    print(json.dumps({
        "argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ), "pid": os.getpid(),
        "sid": os.getsid(0), "netns": os.readlink("/proc/self/ns/net"), "stdin": os.readlink("/proc/self/fd/0"),
        "main": __name__, "mntns": os.readlink("/proc/self/ns/mnt"),
        "listed": sorted(os.listdir(args.list)) if args.list else None,
    }))
    if args.stderr:
        print(args.stderr, file=sys.stderr)
    if args.raise_:
        raise RuntimeError("probe failed on purpose")
    return args.exit


if __name__ == "__main__":
    sys.exit(main())

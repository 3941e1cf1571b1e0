"""Runs a user's program in a node, bounded in time, its output kept: what `make run` starts on each side.

    python3 -m peers.program_runner --out DIR --cwd DIR --duration 30 --env NATLAB_SIDE=a ... -- CMD

CMD is one shell command line (`sh -c`), run as root in the node with the node's addresses and
routes, the environment given (--env, on top of the node's), in a session of its own. Its stdout
and stderr go to DIR/program.log, and DIR is also the program's own output directory
(NATLAB_OUT). The program may end by itself (its exit code is its side's) or run until
--duration: then it is sent SIGTERM, and SIGKILL GRACE_S later, and marked so. The answer is one
JSON line: exit code, whether it was stopped, how long it ran, the first lines of its output.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

GRACE_S = 2.0
HEAD_LINES = 8
LOG = "program.log"


def stop(proc: subprocess.Popen) -> str:
    """TERM the program's whole session, then KILL what is left: how it ended."""
    for sig, wait in ((signal.SIGTERM, GRACE_S), (signal.SIGKILL, GRACE_S)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return "stopped"
        try:
            proc.wait(wait)
            return "stopped" if sig == signal.SIGTERM else "killed"
        except subprocess.TimeoutExpired:
            continue
    return "killed"


def run(command: str, out: Path, cwd: Path, duration_s: float, env: dict[str, str]) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    log = out / LOG
    started = time.monotonic()
    with log.open("wb") as sink:
        try:
            proc = subprocess.Popen(["sh", "-c", command], cwd=cwd, env={**os.environ, **env},
                                    stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        except OSError as exc:
            return {"exit_code": None, "ended": "not started", "seconds": 0.0, "head": [str(exc)]}
        try:
            code = proc.wait(duration_s)
            ended = "exited"
        except subprocess.TimeoutExpired:
            ended = stop(proc)
            code = proc.returncode
        else:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # what it left running in its session
            except ProcessLookupError:
                pass
    head = log.read_text(errors="replace").splitlines()[:HEAD_LINES]
    return {"exit_code": code, "ended": ended, "seconds": round(time.monotonic() - started, 3), "head": head}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="peers.program_runner", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the program's output directory (its log lands there)")
    parser.add_argument("--cwd", required=True, help="where the program starts (the user's files)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds before it is stopped")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the program (repeat)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command line")
    args = parser.parse_args(argv)
    command = " ".join(args.command[1:] if args.command[:1] == ["--"] else args.command)
    if not command.strip():
        parser.error("no command given (after --)")
    env = dict(item.partition("=")[::2] for item in args.env)
    print(json.dumps(run(command, Path(args.out), Path(args.cwd), args.duration, env)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

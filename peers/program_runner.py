"""Runs a user's program in a node, bounded in time, its output kept: what `make run` starts on each side.

    python3 -m peers.program_runner --out DIR --cwd DIR --duration 30 --env NATLAB_SIDE=a ... -- CMD
    echo '{"NATLAB_TURN_PASSWORD": "..."}' | python3 -m peers.program_runner ... --env-stdin -- CMD

CMD is one shell command line (`sh -c`), run as root in the node with the node's addresses and
routes, the environment given (--env, on top of the node's), in a session of its own. Its stdout
and stderr go to DIR/program.log, and DIR is also the program's own output directory
(NATLAB_OUT). The program may end by itself (its exit code is its side's) or run until
--duration: then it is sent SIGTERM, and SIGKILL GRACE_S later, and marked so. Nothing it started
outlives the run: the runner is the child subreaper of the program's tree, so daemons that fork
away become its children and are killed at the end (counted and named in the answer). The runner's own
SIGTERM stops the program the same way before the duration (how the lab ends a WAN program when
the peers are done; --pid-file says whom to signal). The answer is one JSON line: exit code,
whether it was stopped, when it started (epoch seconds) and how long it ran, the first lines of
its output.
"""

from __future__ import annotations

import argparse
import ctypes
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


PR_SET_CHILD_SUBREAPER = 36  # prctl(2)


def become_subreaper() -> None:
    """Orphans of the program's tree (a daemon's double fork) become this process's children, not init's."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _children() -> dict[int, tuple[str, int]]:
    """This process's children, each with its state (R, S, Z...) and session, from /proc."""
    me, found = os.getpid(), {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            state, ppid, _pgrp, session = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[:4]
        except (OSError, ValueError):
            continue
        if int(ppid) == me:
            found[int(entry)] = (state, int(session))
    return found


def _reap(pids) -> None:
    for pid in pids:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def settle(session: int, within_s: float = GRACE_S) -> None:
    """Wait (reaping) while processes of the program's session, already signalled with it, are dying:
    one the signal has not finished off yet was not left running (a shell's child the TERM reached
    with it becomes ours only as it dies). Those of other sessions were never signalled: not waited for."""
    deadline = time.monotonic() + within_s
    while True:
        children = _children()
        _reap(pid for pid, (state, _) in children.items() if state == "Z")
        if not any(s == session and state != "Z" for state, s in children.values()) or time.monotonic() > deadline:
            return
        time.sleep(0.01)


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def kill_leftovers() -> list[str]:
    """SIGKILL and reap whatever the program left running (reparented here): the names of those alive."""
    killed: list[str] = []
    for _ in range(100):  # each round reaps one generation: a killed parent's children come here next
        children = _children()
        if not children:
            break
        for pid, (state, _session) in children.items():
            if state != "Z":
                killed.append(f"{_name(pid)}[{pid}]")
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        _reap(children)
    return killed


class StopAsked(Exception):
    """The runner was sent SIGTERM: stop the program now, as at the duration."""


def _stop_asked(_signum: int, _frame: object) -> None:
    raise StopAsked


def run(command: str, out: Path, cwd: Path, duration_s: float, env: dict[str, str]) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    log = out / LOG
    started, started_at = time.monotonic(), time.time()
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
        except (subprocess.TimeoutExpired, StopAsked):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one stop is enough
            ended = stop(proc)
            code = proc.returncode
        else:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # what it left running in its session
            except ProcessLookupError:
                pass
        settle(proc.pid)  # its session was signalled: what is still dying of it is not left running
    head = log.read_text(errors="replace").splitlines()[:HEAD_LINES]
    return {"exit_code": code, "ended": ended, "seconds": round(time.monotonic() - started, 3), "head": head,
            "started_at": round(started_at, 6)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="peers.program_runner", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the program's output directory (its log lands there)")
    parser.add_argument("--cwd", required=True, help="where the program starts (the user's files)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds before it is stopped")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the program (repeat)")
    parser.add_argument("--env-stdin", action="store_true",
                        help="more of the program's environment, one JSON object on stdin (secrets: not in ps)")
    parser.add_argument("--pid-file", help="write the runner's pid here: SIGTERM to it stops the program")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command line")
    args = parser.parse_args(argv)
    command = " ".join(args.command[1:] if args.command[:1] == ["--"] else args.command)
    if not command.strip():
        parser.error("no command given (after --)")
    env = dict(item.partition("=")[::2] for item in args.env)
    if args.env_stdin:
        with open(0, closefd=False) as stdin:  # fd 0 itself: a forked interpreter's sys.stdin may be another's
            text = stdin.read()
        try:
            given = json.loads(text or "{}")
        except ValueError:
            given = None
        if not isinstance(given, dict):
            parser.error("--env-stdin: standard input is not one JSON object")
        env.update({str(k): str(v) for k, v in given.items()})
    signal.signal(signal.SIGTERM, _stop_asked)
    become_subreaper()
    if args.pid_file:
        Path(args.pid_file).write_text(f"{os.getpid()}\n")
    result = run(command, Path(args.out), Path(args.cwd), args.duration, env)
    left = kill_leftovers()
    result["left_running"], result["left"] = len(left), left
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

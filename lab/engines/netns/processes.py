"""The netns lab's processes: the fork server, each node's program, the commands run in nodes.

Node programs run inside their namespace with the host's Python (the one running natlab; PATH
starts with its directory, so `python3` is that one), PYTHONPATH the project, and the command,
environment and sysctls of lab/engines/launch.py. Every `python3 -m` program of a node, its main
program and every such exec, is forked by the lab's fork server (forkserver.py), a Python that has
imported the node programs once: a hundred pairs start a thousand programs, and a new interpreter
each would spend most of the run importing. Other commands are spawned from here, inside the
namespace. Processes are found by the namespace they run in; the fork server (in the host's
namespace) by its pid and start time, and it leaves by itself once its socket is gone.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import nullcontext
from pathlib import Path

from lab.engines.base import ExecResult
from lab.engines.launch import node_environment
from lab.engines.netns import forkserver
from lab.engines.netns.forkserver import PIPE
from lab.engines.netns.layout import NetnsLayout
from lab.engines.node_commands import node_program
from lab.errors import LabError, Progress
from lab.topology import SECRET_ROLES, Node
from node.netns import entered, path_of

READY_WAIT_S = 30.0  # plus READY_WAIT_PER_NODE_S for each node: big labs start hundreds of Pythons
READY_WAIT_PER_NODE_S = 0.5
STOP_WAIT_S = 3.0
FORKSERVER_WAIT_S = 30.0  # its imports take ~0.5 s on an idle machine


def process_start(pid: int) -> int | None:
    """When the process started (clock ticks since boot), None if it is gone or a zombie: with the
    pid, it names one process for good."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[19])


def write_pid_file(path: Path, pid: int) -> None:
    """Write down a process as its pid and start time, so that running_pid never names another."""
    path.write_text(f"{pid} {process_start(pid)}\n")


def running_pid(path: Path) -> int | None:
    """The pid in a file of write_pid_file, if that process (same pid, same start time) still runs."""
    try:
        pid, started = map(int, path.read_text().split())
    except (OSError, ValueError):
        return None
    return pid if process_start(pid) == started else None


def pids_by_namespace() -> dict[int, list[int]]:
    """Every process of the host, by the inode of its network namespace."""
    out: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            link = os.readlink(f"/proc/{entry.name}/ns/net")  # "net:[4026532281]"
        except OSError:
            continue
        out.setdefault(int(link[5:-1]), []).append(int(entry.name))
    return out


def stop_processes_in(inodes: set[int | None]) -> int:
    """SIGTERM every process in these namespaces, SIGKILL what is left after STOP_WAIT_S."""
    def lab_pids() -> list[int]:
        return [pid for ino, pids in pids_by_namespace().items() if ino in inodes for pid in pids]

    pids = lab_pids()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_WAIT_S
        while lab_pids() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not lab_pids():
            break
        pids = lab_pids()
    return len(pids)



PIPE_CAPACITY = 65536  # Linux's default pipe buffer


def _piped(data: bytes):
    """The read end of a pipe that already holds `data`, its write end closed (the reader gets EOF)."""
    if len(data) > PIPE_CAPACITY:  # written before the reader starts: it must fit the pipe
        raise ValueError("stdin for a node's command is for a few bytes (a secret), not a stream")
    read, write = os.pipe()
    os.write(write, data)
    os.close(write)
    return os.fdopen(read, "rb")

class NodeProcesses:
    """Starts, runs commands in and waits for the programs of a netns lab's nodes."""

    def __init__(self, layout: NetnsLayout, project_dir: Path) -> None:
        self.layout = layout
        self.topology = layout.topology
        self.project_dir = project_dir
        self._children: list[subprocess.Popen] = []

    def environment(self, node: Node) -> dict[str, str]:
        bindir = str(Path(sys.executable).parent)
        return {
            "PATH": f"{bindir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "PYTHONPATH": str(self.project_dir),
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "HOME": "/root",
            **node_environment(self.topology, node, run_dir=str(self.layout.node_dir(node.name))),
        }

    # -- the fork server -----------------------------------------------------------------------
    def start_forkserver(self) -> None:
        """Fork the fork server from this process, which has imported pyroute2 by now (the namespaces
        are made with it): the server imports only the rest while the nodes are wired. A process
        with other threads cannot fork safely: there the server is a new interpreter."""
        layout = self.layout
        if threading.active_count() == 1:
            pid = forkserver.fork_server(str(layout.forkserver_socket), str(layout.forkserver_log))
        else:
            with layout.forkserver_log.open("ab") as out:
                pid = subprocess.Popen(
                    [sys.executable, "-u", "-m", "lab.engines.netns.forkserver", "--socket",
                     str(layout.forkserver_socket)],
                    cwd=self.project_dir, env={**os.environ, "PYTHONPATH": str(self.project_dir)},
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                ).pid
        write_pid_file(layout.forkserver_pid, pid)

    def await_forkserver(self) -> None:
        deadline = time.monotonic() + FORKSERVER_WAIT_S
        while not self.forkserver_answers():
            if self.forkserver_pid() is None or time.monotonic() > deadline:
                log = self.layout.forkserver_log.read_text(errors="replace")[-3000:]
                raise LabError(f"the fork server did not start:\n{log}")
            time.sleep(0.005)

    def forkserver_answers(self) -> bool:
        return forkserver.answers(str(self.layout.forkserver_socket))

    def forkserver_pid(self) -> int | None:
        return running_pid(self.layout.forkserver_pid)

    def stop_forkserver(self) -> None:
        """Kill the fork server and wait until it is gone. It holds nothing (what it started runs on
        by itself, its socket goes with the state dir): SIGKILL spares its interpreter's teardown."""
        pid = self.forkserver_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + STOP_WAIT_S
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:  # this process forked it: reap it
                    return
            except ChildProcessError:  # another process's: gone once it is no longer running
                if self.forkserver_pid() is None:
                    return
            time.sleep(0.002)

    # -- node programs and commands -------------------------------------------------------------
    def start(self, node: Node) -> forkserver.Child:
        """Start the node's main program, logging to its run dir. A node that keeps secrets
        (SECRET_ROLES) gets a mount namespace of its own, made by its main program, with a tmpfs over
        the run dir's private/, which every later process of the node joins. The other nodes stay in
        the host's: a copy of the host's mounts per node would cost a big lab a thousand copies of a
        thousand namespace mounts, and every unmount at lab-down would reach them all."""
        layout = self.layout
        run_dir = layout.node_dir(node.name)
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        private = node.role in SECRET_ROLES
        if private:
            layout.private_dir(node.name).mkdir(mode=0o700)
        child = self._popen(node.name, node_program(self.topology, node), log=run_dir / "main.log", first=private)
        write_pid_file(layout.main_pid_file(node.name), child.pid)
        return child

    def _mount_namespace(self, node: str) -> str | None:
        """The node's own mount namespace, by its main program (which made it); None for a node in the host's."""
        if self.topology.node(node).role not in SECRET_ROLES:
            return None
        pid = running_pid(self.layout.main_pid_file(node))
        if pid is None:
            raise LabError(f"{self.layout.namespace(node)}'s main program is not running: "
                           "run `make lab-down` and `make lab-up`")
        return f"/proc/{pid}/ns/mnt"

    def _popen(self, node: str, argv: list[str], log: Path | None = None, stdin: bytes | None = None,
               first: bool = False) -> forkserver.Child | subprocess.Popen:
        """Start argv inside the node (its network namespace, and its own mount namespace if it has
        one), in a session of its own (the terminal's Ctrl-C is for the CLI). `first`: the main
        program of a node that keeps secrets, which makes the mount namespace every later process joins.

        `python3 -m MODULE` is forked by the fork server (no interpreter start); any other program is
        spawned from here (vfork: ~1 ms, where a fork of the fork server's big image costs ~10), by
        nsenter into a node's own mount namespace (a process with threads cannot enter one itself).
        `stdin` (a few bytes: a secret) is its standard input, through a pipe written whole first."""
        path = path_of(self.layout.namespace(node))
        if not path.exists():
            raise LabError(f"{self.layout.namespace(node)} does not exist: run `make lab-up` first")
        env = self.environment(self.topology.node(node))
        mount_ns = None if first else self._mount_namespace(node)
        with (open(os.devnull, "rb") if stdin is None else _piped(stdin)) as source, \
                (log.open("ab") if log else nullcontext()) as out:
            stdio = (source.fileno(), out.fileno(), out.fileno()) if out else (source.fileno(), PIPE, PIPE)
            if forkserver.python_module(argv) is None:
                if first:
                    raise LabError(f"a node's main program is a Python module, not {argv[0]}")
                entering = [] if mount_ns is None else \
                    ["nsenter", f"--mount={mount_ns}", f"--wd={self.project_dir}", "--"]
                with entered(path):
                    return subprocess.Popen([*entering, *argv], env=env, cwd=self.project_dir, stdin=stdio[0],
                                            stdout=stdio[1], stderr=stdio[2], start_new_session=True)
            request = forkserver.Request(argv=argv, env=env, cwd=str(self.project_dir), netns=str(path),
                                         private_dir=str(self.layout.private_dir(node)) if first else None,
                                         mount_ns=mount_ns)
            return self._ask(request, *stdio)

    def _ask(self, request: forkserver.Request, *stdio: int) -> forkserver.Child:
        try:
            return forkserver.start(str(self.layout.forkserver_socket), request, *stdio)
        except OSError as exc:
            raise LabError(f"the {self.topology.project} lab's fork server does not answer ({exc}): "
                           "run `make lab-down` and `make lab-up`") from None

    def exec(self, node: str, argv: list[str], stdin: bytes | None = None) -> ExecResult:
        try:
            proc = self._popen(node, argv, stdin=stdin)
        except FileNotFoundError as exc:
            return ExecResult(127, "", str(exc))
        out, err = proc.communicate()
        return ExecResult(proc.wait(), out.decode(errors="replace"), err.decode(errors="replace"))

    def spawn(self, node: str, argv: list[str]) -> None:
        proc = self._popen(node, argv, log=self.layout.node_dir(node) / "spawned.log")
        if isinstance(proc, forkserver.Child):
            proc.detach()  # the fork server reaps it
        else:
            self._children = [c for c in self._children if c.poll() is None] + [proc]  # reaped here

    def wait_ready(self, started: dict[str, forkserver.Child], progress: Progress) -> None:
        timeout = READY_WAIT_S + READY_WAIT_PER_NODE_S * len(started)
        deadline = time.monotonic() + timeout
        waiting = dict(started)
        said = time.monotonic()
        while waiting:
            for name, proc in list(waiting.items()):
                if self.layout.ready_file(name).exists():
                    del waiting[name]
                elif proc.poll() is not None:
                    log = (self.layout.node_dir(name) / "main.log").read_text(errors="replace")[-3000:]
                    raise LabError(f"{self.layout.namespace(name)} failed to start (exit {proc.returncode}):\n{log}")
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise LabError(f"nodes not ready after {timeout:.0f}s: {', '.join(sorted(waiting)[:10])}")
            if time.monotonic() - said > 3:
                progress(f"{len(started) - len(waiting)}/{len(started)} nodes ready")
                said = time.monotonic()
            time.sleep(0.01)

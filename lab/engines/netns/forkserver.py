"""One warm Python per netns lab that starts every process of its nodes by fork.

A node program started as a new interpreter spends ~0.4 s importing (pyroute2 alone), and a lab of
a hundred pairs starts a thousand of them. The fork server imports the node programs once, then for
each request forks a child that enters the node's network namespace, takes the request's stdio,
environment and working directory, and runs `python3 -m MODULE ARGS` (any other command is the
engine's to spawn). The programs are the same; only the interpreter start is skipped:
- a preloaded module is run by calling its main() with sys.argv as given. The lab's programs are
  written for this: a module run with -m has a main() that reads sys.argv, and a __main__ block
  that only calls it (tests/unit/test_forkserver.py checks every one). Re-running the module body as
  __main__ (runpy) would double a child's CPU time, most of it spent re-creating its classes;
- any other module is run as the interpreter would, by runpy as __main__.

    python3 -m lab.engines.netns.forkserver --socket PATH [--preload MODULE ...]

or, from a single-threaded program that has imported the heaviest part already (pyroute2: the
netns engine's lab-up), fork_server(): the fork of that program becomes the server, so the lab's
critical path imports pyroute2 once. Its command line is then that program's; ps -o comm shows
natlab-forksrv, and each child the module it runs. The engine stops it by its pid (written with its
start time).

A Python child ends as an interpreter would after flushing stdio and joining its non-daemon
threads, but without atexit handlers (node programs register none), by os._exit: tearing down a
big interpreter a thousand times costs seconds of CPU.

The main program of a node that keeps secrets (the broker, the relay) makes the node's mount
namespace, where its secrets have a tmpfs of their own (node/mount_ns.py); every later process of
that node joins it.

Protocol (Unix stream socket, one request per connection): the client sends a 4-byte big-endian
length and a JSON request {argv, env, cwd, netns, private_dir, mount_ns} in one message, with
three file descriptors (stdin, stdout, stderr) attached; the server answers one JSON line
{"pid": N} (or {"error": TEXT}), then {"exit": CODE} when the process ends, CODE as subprocess
reports it (-N: killed by signal N).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import runpy
import selectors
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass

from node.mount_ns import join, private_mount
from node.netns import enter_for_good

HEADER = struct.Struct("!I")
MAX_REQUEST = 1 << 20
FIRST_READ = 1 << 16
PYTHONS = {"python", "python3", os.path.basename(sys.executable)}
# What the programs import, loaded once here and shared by every child (copy-on-write): the nodes'
# main programs before the server listens, the scenario's while it waits for requests.
PRELOAD = ("pyroute2", "node.lifecycle", "node.network", "node.netlink_batch", "nat.router", "server.broker")
PRELOAD_LATER = ("server.broker_key", "peers.peer", "node.capture_agent", "peers.classify", "node.link_control",
                 "peers.program_runner")
REQUEST_WAIT_S = 5.0  # a client sends its request as soon as it connects
PR_SET_NAME = 15
SERVER_NAME = "natlab-forksrv"


def set_process_name(name: str) -> None:
    """Name this process for ps -o comm, top and pgrep (15 characters): a fork keeps the command
    line of the process it was forked from, so that names nothing."""
    import ctypes

    ctypes.CDLL(None).prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)


@dataclass(frozen=True)
class Request:
    argv: list[str]
    env: dict[str, str]
    cwd: str
    netns: str  # path of the network namespace to run in
    private_dir: str | None = None  # a node's first process: make its mount namespace, a tmpfs over this
    mount_ns: str | None = None  # any later one: join the node's mount namespace (/proc/PID/ns/mnt)

    def encode(self) -> bytes:
        body = json.dumps(self.__dict__).encode()
        return HEADER.pack(len(body)) + body


def python_module(argv: Sequence[str]) -> tuple[str, list[str]] | None:
    """(module, args) if argv is `python3 -m MODULE ARGS...`, which a fork of this interpreter can run."""
    if len(argv) >= 3 and os.path.basename(argv[0]) in PYTHONS and argv[1] == "-m":
        return argv[2], list(argv[3:])
    return None


# -- the child ----------------------------------------------------------------------------------
def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    print(exc.code, file=sys.stderr)
    return 1


def _run_python(module: str, args: list[str]) -> int:
    sys.argv = [module, *args]
    preloaded = sys.modules.get(module)
    try:
        if preloaded is not None and callable(getattr(preloaded, "main", None)):
            sys.argv[0] = preloaded.__file__ or module
            code = _exit_code(SystemExit(preloaded.main()))
        else:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
            code = 0
    except SystemExit as exc:
        code = _exit_code(exc)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # die by SIGINT, as the interpreter does
        os.kill(os.getpid(), signal.SIGINT)
        code = 130
    except BaseException:  # noqa: BLE001 - the interpreter prints any uncaught exception and exits 1
        traceback.print_exc()
        code = 1
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    return code


def _become(request: Request, fds: list[int]) -> int:
    """In the forked child: turn into the requested process. Returns only an exit code for os._exit."""
    os.setsid()  # a session of its own: the terminal's Ctrl-C is for the CLI, as with Popen(start_new_session)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in set(fds) - {0, 1, 2}:
        os.close(fd)
    if request.private_dir:
        private_mount(request.private_dir)
    elif request.mount_ns:
        join(request.mount_ns)
    os.chdir(request.cwd)
    enter_for_good(request.netns)
    os.environ.clear()
    os.environ.update(request.env)
    module = python_module(request.argv)
    if module is not None:
        set_process_name(module[0])
        return _run_python(*module)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # what Popen restores for an exec'd program
        signal.signal(sig, signal.SIG_DFL)
    try:
        os.execvpe(request.argv[0], request.argv, request.env)
    except OSError as exc:
        os.write(2, f"{request.argv[0]}: {exc.strerror}\n".encode())
    return 127


# -- the server ---------------------------------------------------------------------------------
def _leave(*_: object) -> None:
    """SIGTERM or SIGINT: stop serving at once (the processes started go on; lab-down stops them)."""
    raise SystemExit(0)


class ForkServer:
    def __init__(self, path: str) -> None:
        self.path = path
        self.pid = os.getpid()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.selector = selectors.DefaultSelector()
        self.children: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, connection)

    def serve(self, later: Sequence[str] = ()) -> None:
        """Answer requests until SIGTERM or until the socket is removed; import `later` when idle."""
        pending = list(later)
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.listener.bind(self.path)
        self.listener.listen(1024)
        self.selector.register(self.listener, selectors.EVENT_READ)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _leave)
        print(f"forkserver: pid {self.pid}, listening on {self.path}", flush=True)
        try:
            while os.path.exists(self.path):  # lab-down removes the socket with the lab
                events = self.selector.select(timeout=0 if pending else 0.5)
                if not events and pending:
                    importlib.import_module(pending.pop(0))
                    gc.freeze()
                for key, _ in events:
                    if key.fileobj is self.listener:
                        self._accept()
                    else:
                        self._reap(key.fd)
        finally:
            if os.getpid() == self.pid and os.path.exists(self.path):
                os.unlink(self.path)

    def _accept(self) -> None:
        conn, _ = self.listener.accept()
        fds: list[int] = []
        try:
            request, fds = self._read_request(conn)
            pid = os.fork()
            if pid == 0:
                code = 127
                try:
                    self._close_inherited(conn)
                    code = _become(request, fds)
                except BaseException:  # noqa: BLE001 - said on the request's stderr, as a failed exec would be
                    traceback.print_exc()
                finally:
                    for stream in (sys.stdout, sys.stderr):
                        try:
                            stream.flush()
                        except (OSError, ValueError):
                            pass
                    os._exit(code)
            pidfd = os.pidfd_open(pid)
            self.children[pidfd] = (pid, conn)
            self.selector.register(pidfd, selectors.EVENT_READ)
            self._send(conn, {"pid": pid})
        except Exception as exc:  # noqa: BLE001 - the client hears of any failure; the server goes on
            self._send(conn, {"error": f"{type(exc).__name__}: {exc}"})
            conn.close()
        finally:
            for fd in fds:
                os.close(fd)

    @staticmethod
    def _read_request(conn: socket.socket) -> tuple[Request, list[int]]:
        conn.settimeout(REQUEST_WAIT_S)
        data, fds, _flags, _addr = socket.recv_fds(conn, FIRST_READ, 3)
        if len(fds) != 3:
            raise ValueError(f"a request carries 3 file descriptors, not {len(fds)}")
        try:
            while len(data) < HEADER.size or len(data) < HEADER.size + HEADER.unpack_from(data)[0]:
                more = conn.recv(FIRST_READ)
                if not more:
                    raise ValueError("request cut short")
                data += more
            return Request(**json.loads(data[HEADER.size:])), fds
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise

    def _reap(self, pidfd: int) -> None:
        pid, conn = self.children.pop(pidfd)
        self.selector.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        self._send(conn, {"exit": os.waitstatus_to_exitcode(status)})
        conn.close()

    @staticmethod
    def _send(conn: socket.socket, message: dict) -> None:
        try:
            conn.sendall(json.dumps(message).encode() + b"\n")
        except OSError:
            pass  # the client went away (a spawn does not wait for the end)

    def _close_inherited(self, conn: socket.socket) -> None:
        """In a child: close the server's sockets, so that only the server answers and reaps."""
        self.selector.close()
        self.listener.close()
        conn.close()
        for pidfd, (_pid, other) in self.children.items():
            os.close(pidfd)
            other.close()


# -- the client ---------------------------------------------------------------------------------
PIPE = -1  # as subprocess.PIPE, so one stdio tuple serves both kinds of start


class Child:
    """A process the fork server started: the part of subprocess.Popen the engine uses."""

    def __init__(self, conn: socket.socket, stdout: int | None, stderr: int | None) -> None:
        self._conn = conn
        self._received = b""  # what came after the last whole line
        self._pipes = {fd: bytearray() for fd in (stdout, stderr) if fd is not None}
        self._stdout, self._stderr = stdout, stderr
        self.returncode: int | None = None
        answer = self._message()
        if "pid" not in answer:
            self._close()
            raise RuntimeError(answer.get("error", "no answer"))
        self.pid: int = answer["pid"]

    def _message(self) -> dict:
        while b"\n" not in self._received:
            chunk = self._conn.recv(4096)
            if not chunk:
                return {"error": "the fork server closed the connection"}
            self._received += chunk
        line, _, self._received = self._received.partition(b"\n")
        return json.loads(line)

    def _close(self) -> None:
        self._conn.close()
        for fd in self._pipes:
            try:
                os.close(fd)
            except OSError:
                pass
        self._pipes = {}

    def detach(self) -> None:
        """Stop listening for the end (the server reaps the process all the same)."""
        self._close()

    def poll(self) -> int | None:
        if self.returncode is None and b"\n" in self._received:
            self.wait()
        if self.returncode is None:
            with selectors.DefaultSelector() as sel:
                sel.register(self._conn, selectors.EVENT_READ)
                if sel.select(0):
                    self.wait()
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            # No answer at all: the server was killed (lab-down), and the child with it.
            self.returncode = self._message().get("exit", -signal.SIGKILL)
            self._conn.close()
        return self.returncode

    def communicate(self) -> tuple[bytes, bytes]:
        """Read the piped stdout and stderr to their ends, wait for the exit; return what they carried."""
        with selectors.DefaultSelector() as sel:
            for fd in self._pipes:
                sel.register(fd, selectors.EVENT_READ)
            while sel.get_map():
                for key, _ in sel.select():
                    chunk = os.read(key.fd, 1 << 16)
                    if chunk:
                        self._pipes[key.fd] += chunk
                    else:
                        sel.unregister(key.fd)
        out = {fd: bytes(data) for fd, data in self._pipes.items()}
        self.wait()
        self._close()
        return out.get(self._stdout, b""), out.get(self._stderr, b"")  # type: ignore[arg-type]


def answers(server: str) -> bool:
    """Whether a fork server listens on the socket at `server`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(server)
            return True
        except OSError:
            return False


def start(server: str, request: Request, stdin: int, stdout: int, stderr: int) -> Child:
    """Ask the fork server listening at `server` to run `request`, with these file descriptors as its
    stdio; PIPE for stdout or stderr makes a pipe that Child.communicate reads. Raises OSError if the
    server cannot be reached, RuntimeError if it could not start the process."""
    ours: dict[int, int | None] = {}  # slot -> our read end of a pipe
    sent: list[int] = []
    pipe_ends: list[int] = []  # write ends, closed here once sent
    for slot, fd in enumerate((stdin, stdout, stderr)):
        if fd == PIPE:
            read_end, write_end = os.pipe()
            ours[slot] = read_end
            pipe_ends.append(write_end)
            fd = write_end
        sent.append(fd)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(server)
        socket.send_fds(conn, [request.encode()], sent)
    except BaseException:
        conn.close()
        for fd in ours.values():
            os.close(fd)
        raise
    finally:
        for fd in pipe_ends:
            os.close(fd)
    return Child(conn, ours.get(1), ours.get(2))


def fork_server(path: str, log: str) -> int:
    """Fork this process into a fork server listening at `path`, writing to `log`; return its pid.
    Only from a single-threaded process (a fork keeps only the calling thread and copies every lock)."""
    if threading.active_count() != 1:
        raise RuntimeError("fork_server() needs a single-threaded process")
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # or the child would write the parent's buffered output a second time
    pid = os.fork()
    if pid:
        return pid
    try:
        os.setsid()  # the terminal's Ctrl-C is for the CLI
        set_process_name(SERVER_NAME)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        for sig in (signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        for target, fd in enumerate((null, out, out)):
            os.dup2(fd, target)
        os.close(out)
        os.close(null)
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # as python3 -u: what a child prints goes out
        sys.stderr = open(2, "w", buffering=1, closefd=False)
        main(["--socket", path])
    except BaseException:  # noqa: BLE001 - the server's end must never unwind into the program it was forked from
        traceback.print_exc()
    finally:
        os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lab.engines.netns.forkserver", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--socket", required=True, help="path of the Unix socket to listen on")
    parser.add_argument("--preload", nargs="*", default=list(PRELOAD), help="modules to import before listening")
    parser.add_argument("--preload-later", nargs="*", default=list(PRELOAD_LATER),
                        help="modules to import once listening, when no request waits")
    args = parser.parse_args(argv)
    began = time.monotonic()
    for module in args.preload:
        importlib.import_module(module)
    gc.collect()
    gc.freeze()  # the preloaded objects stay shared with every child instead of being copied by the GC
    print(f"forkserver: imported {len(args.preload)} modules in {time.monotonic() - began:.2f}s", flush=True)
    ForkServer(args.socket).serve(args.preload_later)
    return 0


if __name__ == "__main__":
    sys.exit(main())

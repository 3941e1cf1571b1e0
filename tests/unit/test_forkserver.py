"""The fork server (lab/engines/netns/forkserver.py) runs a program as `python3 -m` would: argv, environment,
working directory, stdio, exit codes, session and network namespace, whether the module was
preloaded (main() called) or not (runpy); and every program the lab runs fits the main() contract."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.engines.netns import forkserver
from lab.engines.netns.forkserver import PIPE, Request, python_module
from tests.helpers import ROOT
from tests.helpers.labs import needs_root

PROGRAM_DIRS = ("lab", "nat", "node", "peers", "server", "wire")


def main_block(path: Path) -> list[ast.stmt] | None:
    """The body of the module's `if __name__ == "__main__":` block, if it has one."""
    for node in ast.parse(path.read_text()).body:
        if (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
                and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__"):
            return node.body
    return None


@pytest.mark.parametrize("path", sorted(p for d in PROGRAM_DIRS for p in (ROOT / d).rglob("*.py")), ids=str)
def test_every_program_only_calls_main_when_run(path):
    """The fork server calls main() of a preloaded module instead of re-running it: sound only if
    the __main__ block does nothing else."""
    body = main_block(path)
    if body is None:
        return
    assert len(body) == 1, ast.unparse(body)
    assert ast.unparse(body[0]) in ("main()", "sys.exit(main())")


def test_python_module_recognises_only_python_dash_m():
    assert python_module(["python3", "-m", "peers.peer", "reach"]) == ("peers.peer", ["reach"])
    assert python_module([sys.executable, "-m", "nat.router"]) == ("nat.router", [])
    assert python_module(["taskset", "-c", "1", "python3", "-m", "server.broker"]) is None
    assert python_module(["python3", "-c", "pass"]) is None
    assert python_module(["conntrack", "-F"]) is None


@pytest.fixture(scope="module", params=["preloaded", "not-preloaded"])
def server(request, tmp_path_factory):
    """A fork server that has the probe preloaded (main() is called), and one that has not (runpy)."""
    path = tmp_path_factory.mktemp("fs") / "fs.sock"
    preload = ["tests.helpers.forkserver_probe"] if request.param == "preloaded" else []
    proc = subprocess.Popen([sys.executable, "-m", "lab.engines.netns.forkserver", "--socket", str(path), "--preload", *preload,
                             "--preload-later"],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 30
    while not path.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the fork server did not start"
        time.sleep(0.02)
    yield str(path), request.param == "preloaded"
    proc.terminate()
    proc.wait(10)


def run(server: tuple[str, bool], args: list[str], env: dict[str, str] | None = None, cwd: str = "/",
        netns: str = "/proc/self/ns/net", module: str = "tests.helpers.forkserver_probe", **mount: str) -> tuple[int, str, str]:
    request = Request(argv=["python3", "-m", module, *args], env=env or {"NATLAB_X": "1"}, cwd=cwd, netns=netns, **mount)
    with open(os.devnull, "rb") as null:
        child = forkserver.start(server[0], request, null.fileno(), PIPE, PIPE)
    out, err = child.communicate()
    return child.wait(), out.decode(), err.decode()


def test_a_preloaded_program_runs_with_the_requests_argv_env_cwd_and_stdio(server, tmp_path):
    code, out, err = run(server, ["--exit", "3", "--stderr", "to stderr"], env={"ONLY": "this"}, cwd=str(tmp_path))
    seen = json.loads(out)
    assert code == 3 and err == "to stderr\n"
    assert seen["argv"] == ["--exit", "3", "--stderr", "to stderr"]
    assert seen["env"] == {"ONLY": "this"} and seen["cwd"] == str(tmp_path)
    assert seen["sid"] == seen["pid"], "a session of its own"
    assert seen["stdin"] == "/dev/null"
    preloaded = server[1]
    assert seen["main"] == ("tests.helpers.forkserver_probe" if preloaded else "__main__")


def test_an_unknown_module_fails_as_python_dash_m_does(server):
    code, _, err = run(server, [], module="tests.no_such_probe")
    assert code == 1 and "No module named tests.no_such_probe" in err


def test_an_uncaught_exception_prints_a_traceback_and_exits_1(server):
    code, out, err = run(server, ["--raise"])
    assert code == 1 and "RuntimeError: probe failed on purpose" in err and "Traceback" in err


def test_a_killed_program_reports_the_signal(server):
    argv = ["python3", "-m", "tests.helpers.forkserver_probe", "--sleep", "30"]
    request = Request(argv, {}, "/", "/proc/self/ns/net")
    with open(os.devnull, "rb") as null:
        child = forkserver.start(server[0], request, null.fileno(), PIPE, PIPE)
    os.kill(child.pid, signal.SIGKILL)
    child.communicate()
    assert child.wait() == -signal.SIGKILL


def test_many_at_once(server):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda i: run(server, ["--exit", str(i % 7)]), range(64)))
    assert [code for code, _, _ in results] == [i % 7 for i in range(64)]
    assert len({json.loads(out)["pid"] for _, out, _ in results}) == 64


def test_a_namespace_that_is_gone_fails_the_program_not_the_server(server):
    code, _, err = run(server, [], netns="/run/netns/nltest-no-such-namespace")
    assert code == 127 and "FileNotFoundError" in err and "nltest-no-such-namespace" in err
    assert run(server, [])[0] == 0


def test_a_malformed_request_is_refused_and_the_server_goes_on(server):
    import socket

    with socket.socket(socket.AF_UNIX) as conn, open(os.devnull, "rb") as null:
        conn.connect(server[0])
        body = b'{"argv": ["python3"]}'
        socket.send_fds(conn, [len(body).to_bytes(4, "big") + body], [null.fileno()] * 3)
        answer = json.loads(conn.makefile("rb").readline())
    assert "TypeError" in answer["error"] and "pid" not in answer
    assert run(server, [])[0] == 0


@needs_root
def test_the_program_runs_in_the_requested_network_namespace(server):
    from node.netns import create, path_of, remove

    name = f"nltest-fs-{os.getpid()}"
    create(name)
    try:
        code, out, _ = run(server, [], netns=str(path_of(name)))
        assert code == 0 and json.loads(out)["netns"] == f"net:[{os.stat(path_of(name)).st_ino}]"
    finally:
        remove(name)


@needs_root
def test_a_nodes_private_directory_is_seen_by_its_own_processes_alone(server, tmp_path):
    """The first process makes the node's mount namespace, a tmpfs over its private directory; a
    later one that joins it sees what the first wrote there; the host and a process that does not
    join see the directory empty, and nothing stays once the namespace's processes are gone."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    secret = str(private / "broker.key")
    first = forkserver.start(server[0], Request(argv=["python3", "-m", "tests.helpers.forkserver_probe", "--write",
                                                      secret, "--sleep", "3"], env={}, cwd=str(tmp_path),
                                                netns="/proc/self/ns/net", private_dir=str(private)),
                             os.open(os.devnull, os.O_RDONLY), PIPE, PIPE)
    try:
        deadline = time.monotonic() + 10
        joined = None
        while time.monotonic() < deadline:
            code, out, err = run(server, ["--list", str(private)], cwd=str(tmp_path), mount_ns=f"/proc/{first.pid}/ns/mnt")
            assert code == 0, err
            joined = json.loads(out)
            if joined["listed"]:
                break
            time.sleep(0.05)
        assert joined["listed"] == ["broker.key"] and joined["cwd"] == str(tmp_path)
        assert joined["mntns"] == os.readlink(f"/proc/{first.pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
        code, out, _ = run(server, ["--list", str(private)])
        assert code == 0 and json.loads(out)["listed"] == []  # another node: the host's empty directory
        assert os.listdir(private) == []
    finally:
        out, err = first.communicate()
    assert first.wait() == 0, err
    assert os.listdir(private) == [] and oct(private.stat().st_mode & 0o777) == "0o700"

"""System tests of the netns engine itself: nothing in the host's namespace, nothing left behind
(after lab-down, a failed lab-up, a Ctrl-C), two labs side by side, more pairs than one.

Needs root, no Docker. Marker: netns. Each test uses a project name of its own, so these labs never
meet the one of the `engine` fixture, nor a Docker lab.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab.analysis.verdict import analyse_run
from lab.engines.netns.layout import namespace_inode
from lab.engines.netns.processes import pids_by_namespace
from lab.errors import LabError
from lab.experiment.punch_test import PunchTestConfig, run_punch_test
from node.network import OFF_LAB_PROBE
from tests.helpers import ROOT
from tests.helpers.labs import lab, lab_namespaces, needs_root, say

pytestmark = [needs_root]


def host_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def lab_processes(names: list[str]) -> list[int]:
    inodes = {namespace_inode(n) for n in names} - {None}
    return [pid for ino, pids in pids_by_namespace().items() if ino in inodes for pid in pids]


def fork_servers(project: str) -> list[int]:
    """Processes holding the project's fork server socket (its file may be gone: the socket is not)."""
    path = f"/run/natlab/{project}/forkserver.sock"
    with open("/proc/net/unix") as table:
        inodes = {f"socket:[{line.split()[6]}]" for line in table if line.rstrip().endswith(path)}
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if any(os.readlink(fd.path) in inodes for fd in os.scandir(f"/proc/{entry.name}/fd")):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture
def cleanup():
    """Engines made by a test are taken down whatever happens to it."""
    made = []
    yield made.append
    for eng in made:
        eng.down(say)


def test_the_host_namespace_gets_nothing(cleanup):
    before = host_links()
    eng = lab("netns", project="nltest-host")
    cleanup(eng)
    eng.up(say)
    assert host_links() == before
    switch = subprocess.run(["ip", "netns", "exec", "nltest-host-switch", "ip", "route", "get", OFF_LAB_PROBE],
                            capture_output=True, text=True)
    assert switch.returncode != 0, switch.stdout
    assert fork_servers("nltest-host")
    eng.down(say)
    assert lab_namespaces("nltest-host") == [] and host_links() == before
    assert fork_servers("nltest-host") == []


def test_a_failed_lab_up_removes_what_it_made(monkeypatch):
    eng = lab("netns", project="nltest-fail")
    real_start = eng.processes.start

    def start(node):
        if node.name == "peer-b":
            raise LabError("injected failure")
        return real_start(node)

    monkeypatch.setattr(eng.processes, "start", start)
    with pytest.raises(LabError, match="injected failure"):
        eng.up(say)
    assert lab_namespaces("nltest-fail") == [] and not eng.state_dir.exists()
    assert fork_servers("nltest-fail") == []


INTERRUPT_PAIRS = 30  # a lab-up of ~2 s: long enough to be interrupted at each step


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(("marker", "after_s", "started_ignoring"), [
    ("creating", 0.0, False),  # namespaces being made
    ("creating", 0.3, False),  # nodes being wired, their programs starting
    ("wired", 0.0, False),  # waiting for the nodes to be ready
    ("creating", 0.3, True),  # started by a shell that ignores SIGINT (a background job, some CI runners)
])
def test_ctrl_c_in_the_middle_of_lab_up_leaves_nothing(marker, after_s, started_ignoring):
    """Ctrl-C as a terminal sends it: to the whole process group, whatever lab-up is doing then."""
    env = {**os.environ, "ENGINE": "netns", "NATLAB_PROJECT": "nltest-int", "PAIRS": str(INTERRUPT_PAIRS)}
    proc = subprocess.Popen([sys.executable, "-m", "lab", "up"], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=_ignore_sigint if started_ignoring else None)
    said = []
    for line in proc.stdout:  # the progress lines say what lab-up is doing
        said.append(line)
        if marker in line:
            break
    time.sleep(after_s)
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    out = "".join(said) + out
    try:
        assert "lab is up" not in out, f"lab-up finished before the Ctrl-C: {out}"
        assert proc.returncode == 130, out
        assert "removing what it created" in out
        assert lab_namespaces("nltest-int") == [] and fork_servers("nltest-int") == []
    finally:
        lab("netns", project="nltest-int", pairs=INTERRUPT_PAIRS).down(say)


def test_two_labs_side_by_side_and_each_down_removes_only_its_own(cleanup, tmp_path):
    first, second = lab("netns", project="nltest-one"), lab("netns", project="nltest-two")
    cleanup(first)
    cleanup(second)
    first.up(say)
    second.up(say)
    for eng in (first, second):
        verdict = analyse_run(run_punch_test(eng, PunchTestConfig(messages=3), tmp_path / eng.topology.project, say))
        assert verdict.ok, [(c.id, c.detail) for c in verdict.checks if not c.ok]
    first.down(say)
    assert lab_namespaces("nltest-one") == [] and not lab_processes(lab_namespaces("nltest-one"))
    assert second.is_up()
    second.down(say)
    assert lab_namespaces("nltest-two") == []


def test_more_pairs_punch_through_both_public_segments(cleanup, tmp_path):
    eng = lab("netns", project="nltest-pairs", pairs=3)
    cleanup(eng)
    eng.up(say)
    for node in eng.topology.nodes:
        res = eng.exec(node.name, ["ip", "route", "get", OFF_LAB_PROBE])
        assert res.exit_code != 0, f"{node.name}: {res.stdout}"
    verdict = analyse_run(run_punch_test(eng, PunchTestConfig(messages=3), tmp_path, say))
    assert verdict.ok, [(c.id, c.detail) for c in verdict.checks if not c.ok]
    per_pair = [c for c in verdict.checks if c.id != "0"]  # check 0 is of the captures, not of a pair
    assert per_pair and all(c.pairs == 3 and c.detail.startswith("3/3 pairs pass") for c in per_pair)
    assert {p.name for p in tmp_path.glob("*/broker-wan*.pcap")} == {"broker-wan.pcap", "broker-wan2.pcap"}


def test_lab_down_of_another_size_removes_the_whole_lab(cleanup):
    big = lab("netns", project="nltest-size", pairs=2)
    cleanup(big)
    big.up(say)
    names = lab_namespaces("nltest-size")
    assert len(names) == len(big.topology.nodes) + 1
    lab("netns", project="nltest-size").down(say)  # PAIRS=1 now: the manifest knows the rest
    assert lab_namespaces("nltest-size") == [] and not lab_processes(names)


def test_lab_up_from_a_process_with_threads_starts_a_new_fork_server(cleanup):
    """A fork of a process with other threads is not safe: then the fork server is a new interpreter."""
    import threading

    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        eng = lab("netns", project="nltest-thr")
        cleanup(eng)
        eng.up(say)
        assert eng.is_up() and eng.exec("peer-a", ["python3", "-m", "peers.peer", "--help"]).ok
        (server,) = fork_servers("nltest-thr")
        assert b"lab.engines.netns.forkserver" in Path(f"/proc/{server}/cmdline").read_bytes()
        eng.down(say)
        assert fork_servers("nltest-thr") == []
    finally:
        stop.set()
        other.join()

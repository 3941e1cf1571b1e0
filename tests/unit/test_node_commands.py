"""The host's commands to nodes: the argv each builds and how each answer is read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.engines import node_commands
from lab.engines.base import ExecResult
from lab.engines.docker.engine import DockerEngine
from lab.errors import LabError
from lab.topology import build_topology
from node.capture_agent import Vantage


class OneNode:
    """An engine stand-in that answers every exec with one canned result, and keeps the argv."""

    def __init__(self, result: ExecResult) -> None:
        self.result, self.argv = result, None

    def exec(self, node: str, argv: list[str], stdin: bytes | None = None) -> ExecResult:
        self.argv = argv
        return self.result


def answer(stdout: str, code: int = 0, stderr: str = "") -> OneNode:
    return OneNode(ExecResult(code, stdout, stderr))


def test_the_result_is_the_last_json_line_and_the_log_comes_along():
    eng = answer('peer-a: starting\n{"ok": false}\n{"ok": true, "messages_received": 10}\n', stderr="line 1\nline 2\n")
    result = node_commands.punch("198.51.100.10:3478", "r", "a", "00" * 32, 10, 0.0, 20.0).run(eng, "peer-a")
    assert result == {"ok": True, "messages_received": 10, "log": ["line 1", "line 2"]}
    assert eng.argv[:4] == ["python3", "-m", "peers.peer", "punch"]
    assert eng.argv[eng.argv.index("--room") + 1] == "r" and eng.argv[eng.argv.index("--id") + 1] == "a"


def test_an_answer_without_json_names_the_command_node_and_stderr():
    with pytest.raises(LabError, match=r"peers\.stun_load on outsider: no JSON result \(exit 1\):\nTraceback"):
        node_commands.stun_load("198.51.100.10:3478", 0.2).run(answer("", 1, "Traceback ..."), "outsider")
    with pytest.raises(LabError, match=r"server\.status on broker: Traceback"):
        node_commands.broker_status().run(answer("", 1, "Traceback ..."), "broker")


def test_a_failed_router_apply_says_why():
    with pytest.raises(LabError, match="router: unknown NAT"):
        node_commands.router_apply("nope").run(answer("", 2, "router: unknown NAT preset 'nope'"), "router-a")


def test_reach_reads_one_outcome_per_target_and_refuses_a_short_answer():
    targets = [("10.0.1.10:40000", "t-a"), ("10.0.2.10:40000", "t-b")]
    cmd = node_commands.reach(targets, 2, 0.3)
    assert cmd.argv.count("--to") == 2 and cmd.argv[cmd.argv.index("--attempts") + 1] == "2"
    both = '{"targets": [{"to": "10.0.1.10:40000", "reached": false}, {"to": "10.0.2.10:40000", "reached": false}]}'
    assert [o["to"] for o in cmd.run(answer(both), "outsider")] == [t for t, _ in targets]
    with pytest.raises(LabError, match="reported 1 of 2 targets"):
        cmd.run(answer('{"targets": [{"to": "10.0.1.10:40000"}]}'), "outsider")


def test_minted_secrets_must_cover_every_room():
    cmd = node_commands.mint_secrets(["r1", "r2"])
    assert cmd.argv[-4:] == ["--room", "r1", "--room", "r2"]
    assert cmd.run(answer('{"secrets": {"r1": "aa", "r2": "bb"}}'), "broker") == {"r1": "aa", "r2": "bb"}
    with pytest.raises(LabError, match="not for"):
        cmd.run(answer('{"secrets": {"r1": "aa"}}'), "broker")


def test_docker_capture_agents_name_each_vantage_by_the_address_on_it():
    eng = DockerEngine(build_topology(pairs=2), Path("/nowhere"))
    agents = {a.node: a for a in eng.capture_agents()}
    assert set(agents) == {n.name for n, _ in eng.topology.captures}
    vantages = [v for a in agents.values() for v in a.argv[a.argv.index("--vantage") + 1::2]]
    assert [v.partition("@")[0] for v in vantages] == list(eng.topology.vantages)
    assert "router-a-wan@198.51.100.101" in agents["router-a"].argv
    assert "broker-wan2@203.0.113.10" in agents["broker"].argv


def test_a_vantage_by_address_needs_an_interface_that_holds_it():
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="192.0.2.77"):
        Vantage.parse("x-wan@192.0.2.77")


def test_a_peers_secrets_go_on_its_stdin_never_on_its_command_line():
    turn = node_commands.TurnCredential("198.51.100.20:3478", "1700000000:a", "s3cr3t-pass")
    cmd = node_commands.punch("198.51.100.10:3478", "room", "a", "ab" * 32, 3, 1.0, 10.0, "auto", turn)
    assert "--secrets-stdin" in cmd.argv and not any("ab" * 32 in a or "s3cr3t" in a for a in cmd.argv)
    assert json.loads(cmd.stdin) == {"secret": "ab" * 32, "turn_password": "s3cr3t-pass"}


def test_the_peer_reads_its_secrets_from_stdin_and_refuses_what_is_not_json(monkeypatch):
    import argparse
    import io

    from peers.peer import CredentialError, secrets_from_stdin

    def given(text: str):
        def fake_open(fd, closefd=True):
            assert fd == 0 and not closefd
            return io.StringIO(text)

        monkeypatch.setattr("builtins.open", fake_open)

    args = argparse.Namespace(secret=None, turn_password=None)
    given('{"secret": "cd", "turn_password": "pw"}')
    secrets_from_stdin(args)
    assert (args.secret, args.turn_password) == ("cd", "pw")
    given("not json")
    with pytest.raises(CredentialError, match="--secrets-stdin: standard input is not one JSON object"):
        secrets_from_stdin(argparse.Namespace(secret=None, turn_password=None))


class StaleNetwork:
    """A Docker network that still counts an endpoint of a removed container until it is disconnected
    (`stale_for` removals), or for good."""

    def __init__(self, stale_for: int | None) -> None:
        self.name, self.stale_for, self.disconnected = "natlab_wan", stale_for, []
        self.attrs = {"Containers": {"ep1": {}}}

    def remove(self):
        import docker

        if self.stale_for is None or self.stale_for > 0:
            self.stale_for = None if self.stale_for is None else self.stale_for - 1
            raise docker.errors.APIError("error", explanation="network natlab_wan has active endpoints")

    def reload(self):
        pass

    def disconnect(self, endpoint, force=False):
        self.disconnected.append((endpoint, force))


def test_lab_down_disconnects_a_stale_endpoint_by_force_and_says_what_is_left_when_that_fails(monkeypatch):
    import lab.engines.docker.engine as docker_engine

    monkeypatch.setattr(docker_engine, "NETWORK_RELEASE_S", 0.6)
    net = StaleNetwork(stale_for=1)
    assert DockerEngine._remove_network(net) is None and net.disconnected == [("ep1", True)]
    stuck = DockerEngine._remove_network(StaleNetwork(stale_for=None))
    assert stuck == "natlab_wan (network natlab_wan has active endpoints)"


def test_waiting_for_a_file_is_one_command_that_ends_when_it_comes_or_at_the_timeout(tmp_path):
    import subprocess
    import threading

    marker = tmp_path / "READY"
    assert subprocess.run(node_commands.wait_for_file(str(marker), 0.2).argv).returncode == 1
    threading.Timer(0.2, marker.touch).start()
    assert subprocess.run(node_commands.wait_for_file(str(marker), 10).argv, timeout=5).returncode == 0


def test_stopping_a_capture_interrupts_its_agent_by_pid_waits_for_done_and_answers_its_stats(tmp_path):
    import subprocess
    import sys
    import time

    agent = """
import os, pathlib, signal, sys, time
d, stop = pathlib.Path(sys.argv[1]), []
signal.signal(signal.SIGINT, lambda *_: stop.append(1))
(d / "PID").write_text(str(os.getpid()))
while not stop:
    time.sleep(0.01)
(d / "STATS").write_text('{"vantages": {}}')
(d / "DONE").write_text("done")
"""
    proc = subprocess.Popen([sys.executable, "-c", agent, str(tmp_path)])
    while not (tmp_path / "PID").exists():
        time.sleep(0.01)
    cmd = node_commands.stop_capture(str(tmp_path), "PID", "DONE", "STATS", 10)
    res = subprocess.run(cmd.argv, capture_output=True, text=True, timeout=10)
    assert cmd.read(ExecResult(res.returncode, res.stdout, res.stderr), "t") == '{"vantages": {}}'
    assert proc.wait(5) == 0
    (tmp_path / "DONE").unlink()
    res = subprocess.run(node_commands.stop_capture(str(tmp_path), "PID", "DONE", "STATS", 0.1).argv)
    assert res.returncode == 1  # no agent left to finish: no DONE in time

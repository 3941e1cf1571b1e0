"""System tests: the real lab, on each engine. Genuine kernel NAT, genuine punching, real pcaps.

Needs root. The lab comes from the module-scoped `engine` fixture in conftest.py, once per engine
(markers netns and docker; Docker is installed and started when missing, as `make lab-up` does).
Nothing here knows which engine runs it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time

from lab.analysis.packets import load
from lab.analysis.verdict import analyse_run
from lab.engines import node_commands
from lab.experiment.punch_test import PunchTestConfig, run_punch_test
from lab.run_format import TAG_UNSOLICITED, tag
from node.network import OFF_LAB_PROBE
from tests.helpers.labs import leftovers, needs_root, punch_test_cli, say

pytestmark = [needs_root]


def test_no_node_has_a_route_off_the_lab(engine):
    for node in engine.topology.nodes:
        res = engine.exec(node.name, ["ip", "route", "get", OFF_LAB_PROBE])
        assert res.exit_code != 0 and "unreachable" in res.stderr, f"{node.name}: {res.stdout}{res.stderr}"


def test_a_peers_only_way_out_is_its_router(engine):
    for pair in engine.topology.pairs:
        routes = json.loads(engine.exec(pair.peer.name, ["ip", "-j", "-4", "route"]).stdout)
        gateways = {r["gateway"] for r in routes if "gateway" in r}
        assert gateways == {str(pair.router.interface("lan").address)}
        broker = engine.exec(pair.peer.name, ["ip", "route", "get", str(engine.topology.broker.address)]).stdout
        assert f"via {pair.router.interface('lan').address}" in broker


def test_lab_up_again_changes_nothing(engine):
    """Nodes that were made again would have new links, hence new MAC addresses."""
    before = {n.name: engine.link_addresses(n.name) for n in engine.topology.nodes}
    engine.up(say)
    assert {n.name: engine.link_addresses(n.name) for n in engine.topology.nodes} == before


def test_make_punch_test_passes_and_its_pcaps_prove_it(engine, tmp_path):
    proc, run_dir = punch_test_cli(tmp_path, engine)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all checks passed" in proc.stdout
    verdict = json.loads((run_dir / "verdict.json").read_text())
    assert verdict["ok"] and [c["id"] for c in verdict["checks"]] == ["0", "1", "2", "3", "4", "5a", "5b", "7"]
    assert len(verdict["captures"]) == 7 and all(c["kernel_drops"] == 0 for c in verdict["captures"].values())
    names = sorted(p.name for p in run_dir.glob("*.pcap"))
    assert names == ["broker-wan.pcap", "relay-wan.pcap", "router-a-lan.pcap", "router-a-wan.pcap",
                     "router-b-lan.pcap", "router-b-wan.pcap", "wan-host-wan.pcap"]
    assert [(p["path"], p["expected"]) for p in verdict["paths"]] == [("direct", "direct")]
    record = json.loads((run_dir / "run.json").read_text())
    for label, result in record["peers"].items():
        assert result["ok"], result
        pair = engine.topology.pair(label)
        assert result["private"].startswith(f"{pair.private_ip}:") and result["public"].startswith(f"{pair.public_ip}:")
    if shutil.which("tshark"):
        for pcap in run_dir.glob("*.pcap"):
            out = subprocess.run(["tshark", "-r", str(pcap)], capture_output=True, text=True)
            assert out.returncode == 0 and out.stdout.strip(), f"tshark on {pcap.name}: {out.stderr}"
    # The broker's capture ends with introductions: nothing of the session reached it.
    broker = [p for p in load(run_dir / "broker-wan.pcap") if p.msg is not None]
    assert broker[-1].msg.TYPE in ("intro", "waiting")


def test_without_the_firewall_the_control_fails(engine, tmp_path):
    """The control is a real measurement: remove router-b's firewall and it must catch it."""
    router = "router-b"
    assert not node_commands.router_apply(firewall=False).run(engine, router)["firewall"]
    try:
        run_dir = run_punch_test(engine, PunchTestConfig(messages=3, timeout_s=6), tmp_path, say)
    finally:
        assert node_commands.router_apply(firewall=True).run(engine, router)["firewall"]
    verdict = analyse_run(run_dir)
    control = next(c for c in verdict.checks if c.id == "5a")
    assert not control.ok
    assert "outsider packets reached router-b-lan" in control.detail
    lan = load(run_dir / "router-b-lan.pcap")
    ping_tag = tag(TAG_UNSOLICITED, engine.topology.pair("b"))
    assert any(p.msg is not None and getattr(p.msg, "tag", "") == ping_tag for p in lan)


def test_with_the_firewall_back_the_lab_passes_again(engine, tmp_path):
    run_dir = run_punch_test(engine, PunchTestConfig(messages=3), tmp_path, say)
    verdict = analyse_run(run_dir)
    assert verdict.ok, [(c.id, c.detail) for c in verdict.checks if not c.ok]


def test_no_secret_is_on_a_peers_command_line_while_it_punches(engine, tmp_path):
    """The room secret and the TURN password reach the peer on its stdin: ps in each peer's node, run
    again and again while the peers punch, shows no secret on any command line."""
    import re
    import threading

    done = threading.Event()
    lines: list[str] = []
    snapshots = []

    def watch():
        while not done.is_set():
            for pair in engine.topology.pairs:
                lines.extend(engine.exec(pair.peer.name, ["ps", "-eo", "args"]).stdout.splitlines())
            snapshots.append(time.monotonic())

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        run_dir = run_punch_test(engine, PunchTestConfig(messages=3, relay="auto"), tmp_path, say)
    finally:
        done.set()
        watcher.join()
    record = json.loads((run_dir / "run.json").read_text())
    assert all(r["ok"] for r in record["peers"].values())  # the secrets arrived
    assert len(snapshots) > 3, "ps never ran while the peers punched"
    hex_secret = re.compile(r"\b[0-9a-f]{64}\b")
    assert not [line for line in lines if hex_secret.search(line) or "--turn-password" in line or "--secret " in line]
    punching = [line for line in lines if "peers.peer punch" in line]  # (forked peers show their server's)
    assert all("--secrets-stdin" in line for line in punching), punching


def test_the_keys_are_seen_inside_their_own_node_alone(engine):
    """The broker's key (room secrets are minted from it) and the relay's TURN secret are among their
    node's secrets, mode 0600; no other node, nor the host, finds anything where they are (netns: a
    tmpfs of the node's own mount namespace over a directory that is empty to everyone else)."""
    from pathlib import Path

    topology = engine.topology
    owners = [(topology.broker.name, "broker.key")] + ([(topology.relay.name, "turn.secret")] if topology.relay else [])
    assert len(owners) == 2  # the standard lab has a relay
    for owner, name in owners:
        where = engine.exec(owner, ["python3", "-c", f"from node.settings import private_file; "
                                                     f"print(private_file({name!r}))"]).stdout.strip()
        assert where.endswith(name), where
        assert engine.exec(owner, ["stat", "-c", "%a", where]).stdout.strip() == "600"
        assert not Path(where).exists()  # the host
        for node in topology.nodes:
            if node.name != owner:
                res = engine.exec(node.name, ["sh", "-c", f"ls -A {Path(where).parent} 2>/dev/null; test -e {where}"])
                assert res.exit_code == 1 and name not in res.stdout, f"{node.name} sees {where}: {res.stdout}"


def test_lab_down_leaves_nothing_behind(engine):
    engine.down(say)
    engine.down(say)  # idempotent
    assert not engine.is_up()
    assert leftovers(engine) == []

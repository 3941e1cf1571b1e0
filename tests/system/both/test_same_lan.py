"""System tests: the same-lan shape (both peers behind one router) on each engine. Locally, private address
to private address, as `make punch-test TOPOLOGY=same-lan` shows it; through the router's hairpin when the
peers try public endpoints only; and through the relay when the router does not hairpin."""

from __future__ import annotations

import json
import subprocess

import pytest

from lab.analysis.run import read_run
from lab.analysis.verdict import judge
from lab.experiment.nat_control import set_nat
from lab.experiment.punch_test import PunchTestConfig, run_punch_test
from lab.topology import SAME_LAN
from tests.conftest import ENGINES
from tests.helpers.labs import lab_up, needs_root, punch_test_cli, say

pytestmark = [needs_root]


@pytest.fixture(scope="module", params=ENGINES)
def engine(request):
    yield from lab_up(request.param, project="nltest-samelan", shape=SAME_LAN)


def test_make_punch_test_finds_the_local_path_and_the_peers_own_captures_prove_it(engine, tmp_path):
    proc, run_dir = punch_test_cli(tmp_path, engine, {"TOPOLOGY": SAME_LAN})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    verdict = json.loads((run_dir / "verdict.json").read_text())
    assert [(p["path"], p["expected"]) for p in verdict["paths"]] == [("local", "local")]
    assert sorted(p.name for p in run_dir.glob("*.pcap")) == [
        "broker-wan.pcap", "peer-a-lan.pcap", "peer-b-lan.pcap", "relay-wan.pcap", "router-a-lan.pcap",
        "router-a-wan.pcap", "wan-host-wan.pcap"]
    # What a user reads with tshark: peer b's own capture holds a's data, private address to private address.
    fields = subprocess.run(["tshark", "-r", str(run_dir / "peer-b-lan.pcap"), "-Y", "udp.payload contains \"data\"",
                             "-T", "fields", "-e", "ip.src", "-e", "ip.dst"], capture_output=True, text=True).stdout
    pairs = {tuple(line.split("\t")) for line in fields.splitlines() if line}
    assert ("10.0.1.10", "10.0.1.11") in pairs and ("10.0.1.11", "10.0.1.10") in pairs
    report = (run_dir / "report.md").read_text()
    assert report.count("participant router_a ") == 1  # one router for both peers in the ladder


def test_peers_trying_public_endpoints_only_meet_through_a_hairpinning_router_and_else_through_the_relay(
        engine, tmp_path):
    config = PunchTestConfig(candidates="public")
    try:
        set_nat(engine, "router-a", "port-restricted,hairpin=on")
        through = judge(read_run(run_punch_test(engine, config, tmp_path / "hairpin", say)))
    finally:
        set_nat(engine, "router-a", "port-restricted")
    assert through.ok, [(c.id, c.detail) for c in through.checks if not c.ok]
    assert [p["path"] for p in through.paths] == ["direct"]
    assert "turned back by router-a, from its public address" in through.check("3").detail
    relayed = judge(read_run(run_punch_test(engine, config, tmp_path / "no-hairpin", say)))
    assert relayed.ok, [(c.id, c.detail) for c in relayed.checks if not c.ok]
    assert [(p["path"], p["expected"]) for p in relayed.paths] == [("relayed", "relayed")]
    assert "does not hairpin" in relayed.check("3").detail

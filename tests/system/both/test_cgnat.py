"""System tests: the cgnat shape (two home routers behind one carrier NAT) on each engine. Through the
carrier's hairpin, as `make punch-test TOPOLOGY=cgnat` shows it, with each translation followed through both
NATs; and through the relay when the carrier does not hairpin."""

from __future__ import annotations

import json
import subprocess

import pytest

from lab.analysis.run import read_run
from lab.analysis.verdict import judge
from lab.experiment.nat_control import set_nat
from lab.experiment.punch_test import PunchTestConfig, run_punch_test
from lab.topology import CARRIER_PRESET, CGNAT
from tests.conftest import ENGINES
from tests.helpers.labs import lab_up, needs_root, punch_test_cli, say

pytestmark = [needs_root]


@pytest.fixture(scope="module", params=ENGINES)
def engine(request):
    yield from lab_up(request.param, project="nltest-cgnat", shape=CGNAT)


def test_make_punch_test_meets_through_the_carrier_s_hairpin_and_follows_both_nats(engine, tmp_path):
    proc, run_dir = punch_test_cli(tmp_path, engine, {"TOPOLOGY": CGNAT})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    verdict = json.loads((run_dir / "verdict.json").read_text())
    assert [(p["path"], p["expected"]) for p in verdict["paths"]] == [("direct", "direct")]
    assert {"carrier-lan.pcap", "carrier-wan.pcap", "router-a-wan.pcap", "router-b-wan.pcap"} <= {
        p.name for p in run_dir.glob("*.pcap")}
    # What a user reads with tshark: the home routers' WANs hold 100.64 addresses; nothing leaves the carrier's
    # WAN from a private one (the outsider's control aims at the LANs), and none of the pair's data reach it.
    def fields(pcap: str, *extra: str) -> set[tuple[str, ...]]:
        out = subprocess.run(["tshark", "-r", str(run_dir / pcap), *extra, "-T", "fields", "-e", "ip.src", "-e", "ip.dst"],
                             capture_output=True, text=True, check=True).stdout
        return {tuple(line.split("\t")) for line in out.splitlines() if line}

    assert ("100.64.1.101", "198.51.100.10") in fields("router-a-wan.pcap")
    assert not {src for src, _ in fields("carrier-wan.pcap") if src.startswith(("100.64.", "10."))}
    assert not fields("carrier-wan.pcap", "-Y", 'udp.payload contains "data"')
    checks = {c["id"]: c for c in verdict["checks"]}
    assert any(e.startswith("router-a then carrier: 10.0.1.10:") and " -> 100.64.1.101:" in e
               for e in checks["4"]["evidence"])
    report = (run_dir / "report.md").read_text()
    assert "Through two NATs (a home router, then its carrier)" in report
    assert "participant carrier " in report


def test_a_carrier_that_does_not_hairpin_leaves_its_subscribers_the_relay(engine, tmp_path):
    try:
        set_nat(engine, "carrier", "full-cone")
        relayed = judge(read_run(run_punch_test(engine, PunchTestConfig(relay="auto"), tmp_path, say)))
    finally:
        set_nat(engine, "carrier", CARRIER_PRESET)
    assert relayed.ok, [(c.id, c.detail) for c in relayed.checks if not c.ok]
    assert [(p["path"], p["expected"]) for p in relayed.paths] == [("relayed", "relayed")]
    assert "both peers behind carrier, which does not hairpin" in relayed.check("3").detail

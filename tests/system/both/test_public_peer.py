"""System tests: the public-peer shape (peer b on the internet, no NAT) on each engine: `make punch-test
TOPOLOGY=public-peer` meets directly, even behind a symmetric NAT on side a, read at peer b's own capture."""

from __future__ import annotations

import json
import subprocess

import pytest

from lab.analysis.run import read_run
from lab.analysis.verdict import judge
from lab.experiment.nat_control import set_nat
from lab.experiment.punch_test import PunchTestConfig, run_punch_test
from lab.topology import PUBLIC_PEER
from tests.conftest import ENGINES
from tests.helpers.labs import lab_up, needs_root, punch_test_cli, say

pytestmark = [needs_root]


@pytest.fixture(scope="module", params=ENGINES)
def engine(request):
    yield from lab_up(request.param, project="nltest-public", shape=PUBLIC_PEER)


def test_make_punch_test_meets_the_public_peer_directly_at_its_own_capture(engine, tmp_path):
    proc, run_dir = punch_test_cli(tmp_path, engine, {"TOPOLOGY": PUBLIC_PEER})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    verdict = json.loads((run_dir / "verdict.json").read_text())
    assert [(p["path"], p["expected"]) for p in verdict["paths"]] == [("direct", "direct")]
    names = {p.name for p in run_dir.glob("*.pcap")}
    assert "peer-b-wan.pcap" in names and not {"router-b-wan.pcap", "router-b-lan.pcap"} & names
    # What a user reads with tshark: a's data reach b from router-a's public address, b's own untranslated.
    out = subprocess.run(["tshark", "-r", str(run_dir / "peer-b-wan.pcap"), "-Y", 'udp.payload contains "data"',
                          "-T", "fields", "-e", "ip.src", "-e", "ip.dst"], capture_output=True, text=True, check=True)
    pairs = {tuple(line.split("\t")) for line in out.stdout.splitlines() if line}
    assert pairs == {("198.51.100.101", "198.51.100.102"), ("198.51.100.102", "198.51.100.101")}


def test_a_symmetric_nat_still_meets_a_public_peer_directly(engine, tmp_path):
    try:
        set_nat(engine, "router-a", "symmetric")
        verdict = judge(read_run(run_punch_test(engine, PunchTestConfig(relay="auto"), tmp_path, say)))
    finally:
        set_nat(engine, "router-a", "port-restricted")
    assert verdict.ok, [(c.id, c.detail) for c in verdict.checks if not c.ok]
    assert [(p["path"], p["expected"]) for p in verdict.paths] == [("direct", "direct")]
    assert "no data of a pair that punched went through the relay" in verdict.check("7").detail

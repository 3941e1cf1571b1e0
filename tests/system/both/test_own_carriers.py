"""System tests: each home router behind a carrier NAT of its own (TOPOLOGY=cgnat-apart) on each engine: the
peers meet across the internet through four NATs, and a symmetric carrier sends them to the relay."""

from __future__ import annotations

import json

import pytest

from lab.analysis.run import read_run
from lab.analysis.verdict import judge
from lab.experiment.nat_control import set_nat
from lab.experiment.punch_test import PunchTestConfig, run_punch_test
from lab.topology import CARRIER_PRESET, CGNAT_APART
from tests.conftest import ENGINES
from tests.helpers.labs import lab_up, needs_root, punch_test_cli, say

pytestmark = [needs_root]


@pytest.fixture(scope="module", params=ENGINES)
def engine(request):
    yield from lab_up(request.param, project="nltest-carriers", shape=CGNAT_APART)


def test_make_punch_test_meets_across_two_carriers_and_follows_four_nats(engine, tmp_path):
    proc, run_dir = punch_test_cli(tmp_path, engine, {"TOPOLOGY": CGNAT_APART})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    verdict = json.loads((run_dir / "verdict.json").read_text())
    assert [(p["path"], p["expected"]) for p in verdict["paths"]] == [("direct", "direct")]
    checks = {c["id"]: c for c in verdict["checks"]}
    assert any(e.startswith("a->b 198.51.100.101:") and e.endswith("at carrier-b-wan: 10/10")
               for e in checks["3"]["evidence"])
    for side, carrier, inner in (("a", "carrier-a", "100.65.1.101"), ("b", "carrier-b", "100.65.2.102")):
        assert any(e.startswith(f"router-{side} then {carrier}: ") and f" -> {inner}:" in e
                   for e in checks["4"]["evidence"])
    assert "Through two NATs (a home router, then its carrier)" in (run_dir / "report.md").read_text()


def test_a_symmetric_carrier_sends_the_pair_to_the_relay(engine, tmp_path):
    try:
        set_nat(engine, "carrier-b", "symmetric")
        relayed = judge(read_run(run_punch_test(engine, PunchTestConfig(relay="auto"), tmp_path, say)))
    finally:
        set_nat(engine, "carrier-b", CARRIER_PRESET)
    assert relayed.ok, [(c.id, c.detail) for c in relayed.checks if not c.ok]
    assert [(p["path"], p["expected"]) for p in relayed.paths] == [("relayed", "relayed")]
    assert "router-b behind carrier-b (the two NATs in series to the theory)" in relayed.check("3").detail

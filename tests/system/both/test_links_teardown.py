"""System test: lab-down of a lab whose links were conditioned leaves nothing on the host, on each engine."""

from __future__ import annotations

import subprocess

import pytest

from lab.experiment.link_control import set_link
from tests.conftest import ENGINES
from tests.helpers.labs import lab, lab_namespaces, needs_root, say

pytestmark = [needs_root]
PROJECT = "nltest-links"


def host_state() -> dict[str, str]:
    """What a link could leave in the host's own namespace: raw-table rules, nft tables, qdiscs, processes."""
    def out(argv: list[str]) -> str:
        return subprocess.run(argv, capture_output=True, text=True).stdout

    return {
        "iptables raw": out(["iptables-save", "-t", "raw"]).count("natlab-link"),
        "nft tables": "natlab_link" in out(["nft", "list", "tables"]),
        "qdiscs": sorted(line.split()[1] for line in out(["tc", "qdisc", "show"]).splitlines() if "tbf" in line),
        "processes": [line for line in out(["ps", "-eo", "args"]).splitlines() if "node.link_control" in line],
    }


@pytest.mark.parametrize("engine_name", ENGINES)
def test_lab_down_leaves_nothing_of_a_conditioned_link(engine_name):
    before = host_state()
    eng = lab(engine_name, project=PROJECT, link_a="delay=20ms,loss=1%,rate=10mbit,duplicate=1%", link_broker="wifi")
    eng.up(say)
    try:
        state = set_link(eng, "router-b", "mobile-3g,corrupt=1%")
        assert state["queued_interfaces"] == 2 and state["installed"]["rate_kbit"] == 2000, state
    finally:
        eng.down(say)
    assert host_state() == before
    assert lab_namespaces(PROJECT) == []
    if engine_name == "docker":
        names = subprocess.run(["docker", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True).stdout
        assert PROJECT not in names

"""The netns engine's names and plans, without root: what it would make, and where."""

from __future__ import annotations

from pathlib import Path

from lab.engines.launch import node_environment
from lab.engines.netns.engine import NetnsEngine
from lab.topology import MAX_PAIRS, build_topology
from node.capture_agent import Vantage
from node.settings import READY_FILE, ready_file


def engine(**topology) -> NetnsEngine:
    return NetnsEngine(build_topology(**topology), Path("/opt/natlab"))


def test_every_interface_name_fits_and_is_unique_in_its_namespace():
    eng = engine(pairs=MAX_PAIRS, project="natlab-longest")
    layout = eng.layout
    switch = [layout.port(n, i.side) for n in eng.topology.nodes for i in n.interfaces]
    switch += [layout.bridge(net.name) for net in eng.topology.networks]
    assert len(switch) == len(set(switch)) and max(map(len, switch)) <= 15
    assert layout.port(eng.topology.node("router-a"), "lan") == "router-a.lan"
    assert [layout.iface(eng.topology.broker, s) for s in ("wan", "wan2")] == ["eth0", "eth1"]


def test_namespaces_carry_the_project_and_the_switch_goes_last():
    eng = engine(project="lab2")
    names = eng.layout.namespaces()
    assert names[-1] == "lab2-switch" and "lab2-peer-a" in names
    assert all(n.startswith("lab2-") for n in names)


def test_each_node_has_its_own_run_dir_and_docker_keeps_todays_paths():
    eng = engine()
    env = eng.processes.environment(eng.topology.node("router-a"))
    assert ready_file(env) == Path("/run/natlab/natlab/nodes/router-a/ready")
    assert env["PYTHONPATH"] == "/opt/natlab" and env["NATLAB_NAT"] == "port-restricted"
    assert ready_file(node_environment(eng.topology, eng.topology.node("router-a"))) == READY_FILE


def test_one_capture_agent_covers_every_vantage_point_in_its_namespace():
    eng = engine(pairs=2)
    (agent,) = eng.capture_agents()
    vantages = [Vantage.parse(v) for v in agent.argv[agent.argv.index("--vantage") + 1::2]]
    assert [v.name for v in vantages] == [f"{n.name}-{i.side}" for n, i in eng.topology.captures]
    assert vantages[0] == Vantage("broker-wan", "eth0", "/run/netns/natlab-broker")
    assert agent.node == "broker" and agent.directory == "/run/natlab/natlab/capture"

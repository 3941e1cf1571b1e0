"""PAIRS=N: the topology's address plan, and a verdict that checks every pair, on runs the tests build."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from lab.analysis.packets import load_run
from lab.analysis.run import RunView
from lab.analysis.verdict import analyse
from lab.engines.docker.compose_file import bridge_name, compose_spec, render
from lab.topology import MAX_PAIRS, TopologyError, build_topology
from tests.helpers.pcap_factory import LATE_PEER, MESSAGES, Faults, build_run


def test_pair_one_is_todays_lab_whatever_the_size():
    one, many = build_topology(), build_topology(pairs=5)
    for name in ("broker", "router-a", "router-b", "peer-a", "peer-b"):
        assert one.node(name).interfaces == many.node(name).interfaces[: len(one.node(name).interfaces)]
    assert [pp.number for pp in many.punch_pairs] == [1, 2, 3, 4, 5]
    assert [(p.label, p.side, p.number) for p in many.punch_pairs[1].sides] == [("a2", "a", 2), ("b2", "b", 2)]


def test_every_address_is_unique_and_in_the_lab_ranges():
    t = build_topology(pairs=MAX_PAIRS)
    addresses = [i.address for n in t.nodes for i in n.interfaces] + [a for n in t.nodes for a in n.aliases]
    assert len(addresses) == len(set(addresses))
    public = [net.subnet for net in t.public_networks]
    assert {str(s) for s in public} == {"198.51.100.0/24", "203.0.113.0/24"}
    for node in t.nodes:
        for iface in node.interfaces:
            assert iface.address in t.network(iface.network).subnet
            assert iface.address != t.network(iface.network).reserved_gateway
            assert t.is_private(iface.address) != t.is_public(iface)


def test_both_routers_of_a_pair_share_a_segment_where_the_broker_is():
    t = build_topology(pairs=4)
    broker_nets = {i.network for i in t.broker.interfaces}
    for pp in t.punch_pairs:
        nets = {side.router.interface("wan").network for side in pp.sides}
        assert len(nets) == 1 and nets <= broker_nets
    router = t.node("router-a2")  # on the second segment: reaches the broker's first addresses through it
    assert router.interface("wan").network == "wan2"
    assert {(str(r.destination), str(r.via)) for r in router.routes} == {
        ("198.51.100.10/32", "203.0.113.10"), ("198.51.100.11/32", "203.0.113.10")}
    assert str(t.node("peer-b2").address) == "10.0.4.10"


def test_sizes_outside_the_plan_are_refused():
    for bad in (0, MAX_PAIRS + 1):
        with pytest.raises(TopologyError, match="PAIRS must be between 1 and"):
            build_topology(pairs=bad)
    with pytest.raises(TopologyError, match="project name"):
        build_topology(project="Bad Name")


def test_a_bigger_lab_renders_its_own_compose_file_with_distinct_bridges():
    t = build_topology(pairs=120, project="natlab-big")
    spec = compose_spec(t)
    bridges = [net["driver_opts"]["com.docker.network.bridge.name"] for net in spec["networks"].values()]
    assert len(bridges) == len(set(bridges)) and all(len(b) <= 15 for b in bridges)
    assert spec["services"]["peer-a7"]["depends_on"] == ["router-a7", "relay"]
    assert render(build_topology(pairs=2)) != render(build_topology())
    assert bridge_name(build_topology(), "lan-a") == "natlab-lan-a"


def verdict_for(tmp_path, faults: Faults = Faults(), pairs: int = 3, faulty_pair: int = 2):
    topo = build_run(tmp_path, faults, pairs=pairs, faulty_pair=faulty_pair).topology
    return analyse(load_run(tmp_path), topo, MESSAGES, LATE_PEER, "test")


def test_a_good_run_of_three_pairs_passes_for_every_pair(tmp_path):
    verdict = verdict_for(tmp_path)
    assert verdict.ok, [c.detail for c in verdict.checks if not c.ok]
    for check in verdict.checks:
        assert check.detail.startswith("3/3 pairs pass (pair 1: ") and check.pairs == 3


@pytest.mark.parametrize(
    "faults, check_id, words",
    [
        (Faults(one_way=True), "3", "b2->a2"),
        (Faults(firewall_off=True), "5a", "outsider packets reached router-b2-lan"),
        (Faults(bypass=True), "5b", "peer-a2 got past router-a2"),
        (Faults(via_broker=True), "2", "reached the broker"),
        (Faults(leak=True), "4", "10.0.3.10"),
    ],
)
def test_a_fault_in_one_pair_fails_that_pair_only(tmp_path, faults, check_id, words):
    verdict = verdict_for(tmp_path, faults)
    failing = [c for c in verdict.checks if not c.ok]
    assert [c.id for c in failing] == [check_id]
    assert failing[0].failed_pairs == [2]
    assert failing[0].detail.startswith("2/3 pairs pass; pair 2: ") and words in failing[0].detail
    assert all(e.startswith("pair 2: ") for e in failing[0].evidence)


def test_a_pair_sees_its_own_packets_at_the_broker_and_the_unowned_ones(tmp_path):
    """for_pair's index of the shared vantage points keeps what a plain filter of each packet keeps."""
    topo = build_run(tmp_path, Faults(attacker=True), pairs=3).topology
    view = RunView(load_run(tmp_path), topo)

    def addresses(pairs) -> set[str]:
        return {str(ip) for p in pairs for ip in (p.public_ip, p.private_ip, p.router.interface("lan").address)}

    def carried(p) -> set[str]:
        return {p.src, p.dst, *p.quoted}

    for pp in topo.punch_pairs:
        own, seen = addresses(pp.sides), view.for_pair(pp)
        for vantage in view.broker_vantages:
            kept = [p for p in view.caps[vantage] if carried(p) & own or not carried(p) & addresses(topo.pairs)]
            assert seen.caps[vantage] == kept
        routers = {v for v in seen.caps if v.startswith("router-")}
        assert routers == {f"{side.router.name}-{i}" for side in pp.sides for i in ("lan", "wan")}
    assert len(view.for_pair(topo.punch_pairs[0]).caps["broker-wan"]) < len(view.caps["broker-wan"])


def test_the_broker_sees_the_second_segment(tmp_path):
    build_run(tmp_path, pairs=2)
    frames = load_run(tmp_path)
    assert {p.src for p in frames["broker-wan2"]} >= {"203.0.113.101", "203.0.113.102"}
    assert IPv4Address("203.0.113.10") in [i.address for i in build_topology(pairs=2).broker.interfaces]


def test_the_report_of_many_pairs_draws_pair_one_and_says_so(tmp_path):
    from lab.analysis.verdict import analyse_run
    from lab.report.run_report import write_report
    from tests.helpers.pcap_factory import write_record

    built = build_run(tmp_path, pairs=3)
    write_record(tmp_path, built.topology)
    files = write_report(tmp_path, analyse_run(tmp_path))
    text = files.report.read_text()
    assert "The ladder shows pair 1 of 3 only" in text and "**all checks passed**" in text
    mermaid = text.split("```mermaid")[1].split("```")[0]
    assert "participant router_a " in mermaid and "router_a2" not in mermaid and "router-b3" in text

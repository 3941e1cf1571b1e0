"""The cgnat shape: each peer behind its home router, both home routers behind one carrier NAT. Its topology,
the expected path, and the verdict on runs the tests build: through the carrier's hairpin, or not at all."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from lab.analysis.journeys import journeys
from lab.analysis.ladder import lanes
from lab.analysis.nat_table import chains, nat_table
from lab.analysis.packets import load_run
from lab.analysis.paths import expected_path
from lab.analysis.run import RunView
from lab.analysis.verdict import analyse
from lab.engines.docker.compose_file import compose_variables, render
from lab.topology import CARRIER_PRESET, CGNAT, build_topology, wiring
from nat.behaviour import parse_nat
from nat.rules import render as render_rules
from tests.helpers.pcap_factory import LATE_PEER, MESSAGES, Faults, build_run, built_verdict
from tests.helpers.pcap_factory import failing_checks as failing

NO_HAIRPIN = "full-cone"


def verdict_for(tmp_path: Path, faults: Faults = Faults(), relay: str = "off"):
    return built_verdict(tmp_path, faults, CGNAT, relay)


def test_two_home_routers_sit_on_the_carrier_s_segment_behind_its_one_public_address():
    t = build_topology(shape=CGNAT)
    carrier = t.node("carrier")
    assert carrier.nat == CARRIER_PRESET and parse_nat(carrier.nat).hairpinning  # RFC 6888: a CGN hairpins
    assert [(i.network, str(i.address)) for i in carrier.interfaces] == [("wan", "198.51.100.101"),
                                                                         ("carrier-net", "100.64.1.1")]
    for side, host in (("a", "100.64.1.101"), ("b", "100.64.1.102")):
        pair = t.pair(side)
        assert pair.carrier == carrier and pair.edge == carrier
        assert pair.routers == (t.node(f"router-{side}"), carrier)
        assert str(pair.router.interface("wan").address) == host
        assert str(pair.public_ip) == "198.51.100.101"
        # The home router reaches the internet only through the carrier.
        assert {str(r.via) for r in pair.router.routes} == {"100.64.1.1"}
    assert t.is_private("100.64.1.101") and not t.is_private("198.51.100.101")
    # Both sides of every router are captured: carrier-lan is the home routers' WAN segment.
    assert {"carrier-wan", "carrier-lan", "router-a-wan", "router-a-lan", "router-b-wan"} <= set(t.vantages)
    (pp,) = t.punch_pairs
    assert pp.shares_edge and not pp.same_lan
    assert all(str(r.via) == "198.51.100.101" for r in t.outsider.routes)  # the LANs' only public address


def test_every_pair_gets_a_carrier_of_its_own_and_the_compose_file_follows_the_shape():
    t = build_topology(shape=CGNAT, pairs=3)
    assert [t.pair(f"a{n}").carrier.name for n in (2, 3)] == ["carrier2", "carrier3"]
    assert t.network("carrier3-net").subnet == IPv4Network("100.64.3.0/24")
    assert wiring(t).to_json() == t.to_json()  # compose.yaml holds the cgnat wiring, not the standard one
    text = render(t)
    assert "carrier-net:" in text and "NATLAB_NAT_CARRIER" in text
    assert compose_variables(build_topology(shape=CGNAT, nat_carrier="symmetric"))["NATLAB_NAT_CARRIER"] == "symmetric"
    assert render(build_topology()) == render(build_topology(shape="standard"))  # the standard lab unchanged


def test_expected_path_follows_the_carrier_s_hairpin_then_the_home_nats():
    def expected(carrier: str, nat_a: str = "port-restricted", relay: str = "auto") -> tuple[str, str]:
        (pp,) = build_topology(shape=CGNAT, nat_carrier=carrier, nat_a=nat_a).punch_pairs
        e = expected_path(pp, relay, LATE_PEER)
        return e.path, e.reason

    path, reason = expected(CARRIER_PRESET)
    assert path == "direct" and reason.startswith("carrier hairpins")
    assert expected(NO_HAIRPIN) == ("relayed", "both peers behind carrier, which does not hairpin")
    assert expected(NO_HAIRPIN, relay="off")[0] == "failed"
    assert expected(CARRIER_PRESET, nat_a="symmetric")[0] == "relayed"  # the home NATs still decide
    assert expected(CARRIER_PRESET, nat_a="symmetric", relay="off")[0] == "failed"


def test_a_hairpinned_run_passes_with_the_translation_through_both_nats(tmp_path):
    topo, verdict = verdict_for(tmp_path)
    assert failing(verdict) == {}
    assert verdict.paths[0]["path"] == "direct"
    assert "turned back by carrier, from its public address, never on its WAN" in verdict.check("3").detail
    chain = [e for e in verdict.check("4").evidence if e.startswith("router-a then carrier")]
    assert chain and "10.0.1.10:41000 -> 100.64.1.101:47000 -> 198.51.100.101:26324 towards 198.51.100.10:3478" in chain[0]
    # The carrier's ports=block: each home router's translations within its own block of ports.
    assert "carrier: 100.64.1.101's block is ports 26324-26576; its translations used [26324]" in \
        verdict.check("4").evidence
    # b's NAT dropped a's early probes, hairpinned to it by the carrier: the control was exercised there.
    assert any("partner packets at router-b-wan before b punched, 0 on lan" in e and not e.startswith("0 ")
               for e in verdict.check("5a").evidence)


def test_the_nat_table_joins_each_home_translation_to_the_carrier_s(tmp_path):
    build_run(tmp_path, shape=CGNAT)
    view = RunView(load_run(tmp_path), build_topology(shape=CGNAT))
    table = nat_table(view, journeys(view.caps))
    assert {t.router for t in table} == {"router-a", "carrier", "router-b"}
    assert all(t.behind == "carrier" for t in table if t.router != "carrier")
    assert any(t.reported for t in table if t.router == "carrier")
    assert ("10.0.1.10:41000 -> router-a -> 100.64.1.101:47000 -> carrier -> 198.51.100.101:26324, "
            "towards 198.51.100.10:3478") in chains(table)
    names = [lane.node for lane in lanes(view)]
    assert names[:3] == ["peer-a", "router-a", "carrier"] and names[-2:] == ["router-b", "peer-b"]


def test_a_carrier_that_does_not_hairpin_sends_the_pair_to_the_relay_and_a_lost_way_fails(tmp_path):
    _, verdict = verdict_for(tmp_path / "relayed", Faults(nat_carrier=NO_HAIRPIN, relayed=True), relay="auto")
    assert failing(verdict) == {}
    assert verdict.paths[0] == {"pair": 1, "path": "relayed", "expected": "relayed",
                                "reason": "both peers behind carrier, which does not hairpin"}
    # None of the partner's probes can reach a home router: only the outsider tests the carrier.
    assert any("does not hairpin" in e and "only the outsider tests carrier" in e
               for e in verdict.check("5a").evidence)
    _, one_way = verdict_for(tmp_path / "one-way", Faults(one_way=True))
    assert set(failing(one_way)) == {"3"} and "messages delivered a->b 5/5, b->a 0/5" in failing(one_way)["3"]


def test_the_firewall_drops_before_routing_so_an_unrouted_lan_draws_no_icmp_error():
    text = render_rules(parse_nat(CARRIER_PRESET), "eth1", "eth0", "198.51.100.101", lan_net=IPv4Network("100.64.1.0/24"))
    screen = text[text.index("chain screen {"):text.index("chain forward {")]
    assert "hook prerouting priority filter" in screen
    assert screen.index("ct state established,related accept") < screen.index('iifname "eth1" drop')
    assert "ct status dnat accept" in screen  # a cone mapping's inbound flows pass, as in forward
    assert "reject" not in text


def test_a_topology_file_takes_a_cgnat_pair_with_its_carrier_s_nat(tmp_path):
    from lab.topology_file import load_topology_file

    path = tmp_path / "lab.toml"
    path.write_text('[[pair]]\n\n[[pair]]\nshape = "cgnat"\nnat_carrier = "full-cone"\n')
    t = load_topology_file(path, "natlab")
    assert t.pair("a").carrier is None and t.node("carrier2").nat == "full-cone"
    assert t.pair("b2").public_ip == IPv4Address("203.0.113.101")
    path.write_text('[[pair]]\nshape = "cgnat"\nnat_carrier = "cone"\n')
    import pytest

    from lab.topology import TopologyError

    with pytest.raises(TopologyError, match=r"lab.toml:3: pair 1: .*'cone'"):
        load_topology_file(path, "natlab")


def test_the_cli_sets_a_carrier_s_nat_by_name_and_refuses_a_bad_one_in_one_line():
    from tests.unit.test_cli import run

    proc = run("--engine", "netns", "--topology", CGNAT, "nat-set", "nowhere", "symmetric")
    assert proc.returncode == 2 and proc.stderr.strip().endswith(
        "choose one of carrier, router-a, router-b, peer-a, peer-b")
    proc = run("--engine", "netns", "--topology", CGNAT, "--nat-carrier", "cone", "status")
    assert proc.returncode == 2 and "unknown NAT preset 'cone'" in proc.stderr and "Traceback" not in proc.stderr


def test_a_side_behind_a_carrier_of_its_own_meets_its_partner_across_the_internet(tmp_path):
    from lab.analysis.paths import side_behaviour
    from lab.topology import CGNAT_A, CGNAT_APART

    t = build_topology(shape=CGNAT_A)
    a, b = t.pair("a"), t.pair("b")
    assert a.carrier.name == "carrier-a" and b.carrier is None and b.router.name == "router-b"
    assert str(a.router.interface("wan").address) == "100.65.1.101" and str(a.public_ip) == "198.51.100.101"
    assert [pp.shape for pp in build_topology(shape=CGNAT_APART, pairs=2).punch_pairs] == [CGNAT_APART] * 2
    # The two NATs in series, to the theory: the more dependent mapping and the stricter filtering.
    (pp,) = build_topology(shape=CGNAT_A, nat_a="full-cone", nat_carrier="symmetric").punch_pairs
    assert (side_behaviour(pp.a).mapping, side_behaviour(pp.a).filtering) == ("apdm", "apdf")
    assert expected_path(pp, "auto", LATE_PEER).path == "relayed"
    (pp,) = build_topology(shape=CGNAT_A, nat_a="symmetric", nat_carrier="full-cone").punch_pairs
    assert side_behaviour(pp.a).allocation == "random" and side_behaviour(pp.a).filtering == "apdf"
    for shape in (CGNAT_A, CGNAT_APART):
        topo, verdict = built_verdict(tmp_path / shape, shape=shape)
        assert failing(verdict) == {}, shape
        assert verdict.paths[0]["path"] == "direct" and "public address to public address" in verdict.check("3").detail
        # The partner's early probes arrive from the internet, at the carrier's WAN, and go no further.
        assert any(e.startswith("4 partner packets at carrier-b-wan" if shape == CGNAT_APART else
                                "4 partner packets at router-b-wan") for e in verdict.check("5a").evidence)
        assert any(e.startswith("router-a then carrier-a: 10.0.1.10:") for e in verdict.check("4").evidence)


def test_a_carrier_s_ports_outside_the_subscriber_s_block_fail_check_4(tmp_path):
    # Built behind a carrier that preserves ports, judged as one with blocks: 52000 is no block of router-a's.
    build_run(tmp_path, Faults(nat_carrier="full-cone,hairpin=on"), shape=CGNAT)
    verdict = analyse(load_run(tmp_path), build_topology(shape=CGNAT), MESSAGES, LATE_PEER, "test")
    assert set(failing(verdict)) == {"4"}
    assert "carrier gave 100.64.1.101 ports [52000], outside its block 26324-26576" in failing(verdict)["4"]


def test_a_killed_peer_s_path_behind_one_carrier_is_read_at_the_receivers_not_on_a_wan(tmp_path):
    from lab.analysis.fault_checks import check_path_until_killed

    for name, faults, ok in (("whole", Faults(), True), ("one-way", Faults(one_way=True), False)):
        topo = build_run(tmp_path / name, faults, shape=CGNAT).topology
        view = RunView(load_run(tmp_path / name), topo)
        check = check_path_until_killed(view, topo.punch_pairs[0], MESSAGES)
        assert check.ok is ok, check.detail
    assert check.detail == "no message b->a reached its receiver directly"

"""The public-peer shape: peer a behind its router, peer b on the internet with no NAT. Its topology, the
expected path, and the verdict on runs the tests build."""

from __future__ import annotations

from pathlib import Path

from lab.analysis.journeys import journeys
from lab.analysis.ladder import lanes
from lab.analysis.nat_table import nat_table
from lab.analysis.packets import load_run
from lab.analysis.paths import expected_path
from lab.analysis.run import RunView
from lab.engines.docker.compose_file import render
from lab.topology import PUBLIC_PEER, build_topology, pairs_by_router, wiring
from tests.helpers.pcap_factory import LATE_PEER, Faults, built_verdict
from tests.helpers.pcap_factory import failing_checks as failing


def verdict_for(tmp_path: Path, faults: Faults = Faults(), relay: str = "off"):
    return built_verdict(tmp_path, faults, PUBLIC_PEER, relay)


def test_peer_b_takes_its_router_s_place_on_the_internet():
    t = build_topology(shape=PUBLIC_PEER, pairs=2)
    assert [n.name for n in t.by_role(t.pair("a").router.role)] == ["router-a", "router-a2"]
    b = t.pair("b")
    assert b.router is None and b.routers == () and b.edge is None
    assert [(i.network, str(i.address), i.side) for i in b.peer.interfaces] == [("wan", "198.51.100.102", "wan")]
    assert b.public_ip == b.private_ip and not t.is_private(b.public_ip)
    assert b.peer.captured and "peer-b-wan" in t.vantages and "lan-b" not in {n.name for n in t.networks}
    # On the second segment it reaches the broker's first addresses as the routers there do.
    assert {str(r.via) for r in t.pair("b2").peer.routes} == {"203.0.113.10"}
    assert [pp.shape for pp in t.punch_pairs] == [PUBLIC_PEER] * 2
    assert pairs_by_router(t.pairs) == [[t.pair("a")], [t.pair("a2")]]  # no router to turn off for b
    assert wiring(t).to_json() == t.to_json() and "peer-b:" in render(t)
    assert all(str(r.via) in ("198.51.100.101", "203.0.113.101") for r in t.outsider.routes)


def test_expected_path_treats_no_nat_as_a_full_cone():
    def expected(nat_a: str, relay: str = "auto") -> tuple[str, str]:
        (pp,) = build_topology(shape=PUBLIC_PEER, nat_a=nat_a).punch_pairs
        e = expected_path(pp, relay, LATE_PEER)
        return e.path, e.reason

    path, reason = expected("symmetric")
    assert path == "direct" and reason.startswith("b has no NAT (a full cone to the theory); a direct path opens")
    assert expected("port-restricted")[0] == "direct"


def test_a_direct_run_passes_with_the_public_peer_s_own_capture_as_its_wan_and_lan(tmp_path):
    topo, verdict = verdict_for(tmp_path)
    assert failing(verdict) == {}
    assert verdict.paths[0]["path"] == "direct"
    assert any(e.startswith("a->b") and e.endswith("at peer-b-wan: 5/5") for e in verdict.check("3").evidence)
    assert "peer-b (no NAT): 198.51.100.102:41001 towards 198.51.100.10:3478" in verdict.check("4").evidence
    assert any("it has no NAT, nothing filters what reaches it: no control" in e for e in verdict.check("5a").evidence)
    assert "peer-b has no router: no path around one to test" in verdict.check("5b").evidence
    view = RunView(load_run(tmp_path), topo)
    assert {t.router for t in nat_table(view, journeys(view.caps))} == {"router-a"}
    assert [lane.node for lane in lanes(view)][-1] == "peer-b"


def test_a_lost_way_and_a_leak_still_fail(tmp_path):
    _, one_way = verdict_for(tmp_path / "one-way", Faults(one_way=True))
    assert "3" in failing(one_way)
    _, leak = verdict_for(tmp_path / "leak", Faults(leak=True))
    assert "private 10.0.1.10" in failing(leak)["4"]


def test_a_topology_file_mixes_a_public_peer_pair_with_the_other_shapes(tmp_path):
    from lab.topology_file import load_topology_file

    path = tmp_path / "lab.toml"
    path.write_text('[[pair]]\nshape = "public-peer"\n\n[[pair]]\nshape = "cgnat"\n\n[[pair]]\nshape = "same-lan"\n')
    t = load_topology_file(path, "natlab")
    assert [pp.shape for pp in t.punch_pairs] == ["public-peer", "cgnat", "same-lan"]
    assert t.pair("b").router is None and t.pair("b2").carrier.name == "carrier2"

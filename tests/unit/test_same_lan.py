"""The same-lan shape: both peers behind one router. Its topology, and its verdict on runs the tests build:
locally (private to private), through the router's hairpin (public endpoints only), or wrongly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.analysis.journeys import journeys
from lab.analysis.ladder import build_ladder, lanes
from lab.analysis.nat_table import nat_table
from lab.analysis.packets import load_run
from lab.analysis.paths import expected_path
from lab.analysis.run import RunView
from lab.engines.docker.compose_file import render
from lab.topology import SAME_LAN, TopologyError, build_topology
from tests.helpers.pcap_factory import MESSAGES, Faults, build_run, built_verdict
from tests.helpers.pcap_factory import failing_checks as failing

HAIRPIN = "port-restricted,hairpin=on"


def verdict_for(tmp_path: Path, faults: Faults = Faults(), candidates: str = "all", pairs: int = 1):
    return built_verdict(tmp_path, faults, SAME_LAN, candidates=candidates, pairs=pairs)[1]


def test_both_peers_sit_on_side_a_s_lan_behind_its_one_router():
    t = build_topology(shape=SAME_LAN)
    assert [n.name for n in t.nodes if n.role.value == "router"] == ["router-a"]
    assert [str(t.node(p).address) for p in ("peer-a", "peer-b")] == ["10.0.1.10", "10.0.1.11"]
    (pp,) = t.punch_pairs
    assert pp.same_lan and pp.a.router is pp.b.router or pp.a.router == pp.b.router
    assert {n.name for n, _ in t.captures} >= {"peer-a", "peer-b"}  # their local path never crosses the router
    assert "lan-b" not in {n.name for n in t.networks}
    assert all(str(r.via) != "198.51.100.102" for r in t.outsider.routes)  # no route to a router that is not there


def test_the_standard_shape_is_unchanged_and_an_unknown_shape_is_refused_naming_the_valid_ones():
    assert render(build_topology(shape="standard")) == render(build_topology())
    assert not build_topology().punch_pairs[0].same_lan
    with pytest.raises(TopologyError, match="TOPOLOGY must be one of standard, same-lan, cgnat, public-peer, cgnat-a, cgnat-apart or a .toml file, not 'ring'"):
        build_topology(shape="ring")


def test_many_same_lan_pairs_each_get_a_lan_of_their_own():
    t = build_topology(shape=SAME_LAN, pairs=3)
    lans = [pp.a.peer.interfaces[0].network for pp in t.punch_pairs]
    assert len(set(lans)) == 3
    assert all(pp.a.peer.interfaces[0].network == pp.b.peer.interfaces[0].network for pp in t.punch_pairs)


def test_expected_path_is_local_with_private_candidates_and_hairpin_or_relay_with_public_ones():
    def expected(nat: str, candidates: str, relay: str = "auto") -> str:
        return expected_path(build_topology(shape=SAME_LAN, nat_a=nat).punch_pairs[0], relay,
                             candidates=candidates).path

    assert expected("port-restricted", "all") == "local"
    assert expected(HAIRPIN, "public") == "direct"
    assert expected("port-restricted", "public") == "relayed"
    assert expected("port-restricted", "public", relay="off") == "failed"


def test_a_local_run_passes_every_check_with_the_local_path(tmp_path):
    verdict = verdict_for(tmp_path)
    assert failing(verdict) == {}
    assert verdict.paths[0]["path"] == verdict.paths[0]["expected"] == "local"
    path = verdict.check("3").detail
    assert "private address to private address on their LAN" in path
    assert "crossed their LAN" in verdict.check("2").detail


def test_local_data_seen_on_the_router_s_wan_fail_the_path(tmp_path):
    verdict = verdict_for(tmp_path, Faults(local_out=True))
    assert "reached the internet at router-a-wan" in failing(verdict)["3"]
    assert "10.0.1.10" in failing(verdict)["4"]


def test_a_hairpinned_run_is_direct_through_the_router_and_fails_where_the_local_path_was_expected(tmp_path):
    through = verdict_for(tmp_path / "public", Faults(nat_a=HAIRPIN, hairpinned=True), candidates="public")
    assert failing(through) == {}
    assert through.paths[0]["path"] == "direct"
    assert "turned back by router-a, from its public address" in through.check("3").detail
    wrong = verdict_for(tmp_path / "all", Faults(nat_a=HAIRPIN, hairpinned=True))
    assert "direct, not local as expected" in failing(wrong)["3"]


def test_every_pair_of_a_many_pair_same_lan_run_is_judged_on_its_own_lan(tmp_path):
    verdict = verdict_for(tmp_path, Faults(local_out=True), pairs=3)
    assert set(failing(verdict)) == {"3", "4"}  # the path left the LAN, private addresses and all: a leak too
    assert verdict.check("3").failed_pairs == verdict.check("4").failed_pairs == [1]


def test_the_nat_table_and_the_ladder_show_one_router_for_both_peers(tmp_path):
    build_run(tmp_path, shape=SAME_LAN)
    topo = build_topology(shape=SAME_LAN)
    view = RunView(load_run(tmp_path), topo)
    trips = journeys(view.caps)
    rows = nat_table(view, trips)
    broker_rows = [r for r in rows if r.remote.startswith("198.51.100.10:")]
    assert {r.private.split(":")[0] for r in broker_rows} == {"10.0.1.10", "10.0.1.11"}
    assert all(r.reported for r in broker_rows)  # each peer's mapping, as the broker told its partner
    names = [lane.node for lane in lanes(view)]
    assert names[:3] == ["peer-a", "peer-b", "router-a"] and names.count("router-a") == 1


def test_the_ladder_draws_a_hairpinned_datagram_as_one_arrow_peer_to_peer_through_the_router(tmp_path):
    build_run(tmp_path, Faults(nat_a=HAIRPIN, hairpinned=True), shape=SAME_LAN)
    view = RunView(load_run(tmp_path), build_topology(shape=SAME_LAN, nat_a=HAIRPIN))
    arrows = [a for a in build_ladder(view, journeys(view.caps)).arrows if a.what == "data"]
    assert len(arrows) == 2 * MESSAGES
    assert all({a.src, a.dst} == {"peer-a", "peer-b"} and a.via == "router-a" and not a.dropped for a in arrows)


def test_a_run_s_record_keeps_the_candidates_the_verdict_judged_by(tmp_path):
    from tests.helpers.pcap_factory import write_record

    write_record(tmp_path, build_topology(shape=SAME_LAN), candidates="public")
    assert json.loads((tmp_path / "run.json").read_text())["config"]["candidates"] == "public"

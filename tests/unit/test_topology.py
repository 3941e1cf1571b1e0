"""The topology is the one source of truth: compose.yaml and node settings come from it."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
import yaml

from lab.engines.docker.compose_file import compose_spec, render
from lab.engines.docker.images import host_debian_mirror
from lab.topology import NodeRole, Topology, build_topology
from nat.behaviour import UnknownPreset
from node.settings import settings_from_env
from tests.helpers import ROOT


def test_the_issue_addresses():
    t = build_topology()
    assert str(t.broker.address) == "198.51.100.10"
    assert [str(a.address) for a in t.node("router-a").interfaces] == ["198.51.100.101", "10.0.1.1"]
    assert [str(a.address) for a in t.node("router-b").interfaces] == ["198.51.100.102", "10.0.2.1"]
    assert str(t.node("peer-a").address) == "10.0.1.10" and str(t.node("peer-b").address) == "10.0.2.10"
    assert t.container_name("peer-a") == "natlab-peer-a"


def test_committed_compose_file_is_generated_from_the_topology():
    assert (ROOT / "compose.yaml").read_text() == render(build_topology()), "run `make compose`"


def test_compose_spec_wiring():
    t = build_topology()
    spec = compose_spec(t)
    assert spec["services"]["peer-a"]["depends_on"] == ["router-a", "relay"]
    assert all("healthcheck" not in svc for svc in spec["services"].values())  # lab-up waits for READY itself
    for name, net in spec["networks"].items():
        assert net["driver_opts"]["com.docker.network.bridge.inhibit_ipv4"] == "true"
        gateway = IPv4Address(net["ipam"]["config"][0]["gateway"])
        assert all(i.address != gateway for n in t.nodes for i in n.interfaces), name
    assert spec["services"]["router-a"]["sysctls"]["net.ipv4.ip_forward"] == 1
    yaml.safe_load(render(t))  # parses


def test_node_environment_round_trips_into_node_settings():
    t = build_topology()
    env = compose_spec(t)["services"]["outsider"]["environment"]
    settings = settings_from_env(env)
    assert settings.addresses == {"wan": IPv4Address("198.51.100.66")}
    assert [(str(d), str(v)) for d, v in settings.routes] == [
        ("10.0.1.0/24", "198.51.100.101"),
        ("10.0.2.0/24", "198.51.100.102"),
    ]


def test_peers_route_only_public_prefixes_through_their_router():
    t = build_topology()
    for pair in t.pairs:
        assert [str(r.via) for r in pair.peer.routes] == [str(pair.router.interface("lan").address)]
        assert not any(r.destination.prefixlen == 0 for r in pair.peer.routes)
    assert all(not n.routes for n in t.by_role(NodeRole.ROUTER) + t.by_role(NodeRole.BROKER))


def test_snapshot_round_trip():
    t = build_topology()
    assert Topology.from_json(t.to_json()) == t


def test_unknown_nat_preset_is_refused_before_anything_starts():
    with pytest.raises(UnknownPreset, match="valid presets"):
        build_topology(nat_a="full-moon")


def test_debootstrap_mirror_comes_from_the_hosts_apt_sources(tmp_path):
    deb822 = tmp_path / "debian.sources"
    deb822.write_text("Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n")
    oneline = tmp_path / "sources.list"
    oneline.write_text("deb [arch=amd64] http://other.example/debian/ bookworm main\n")
    assert host_debian_mirror([deb822]) == "http://mirror.example/debian"
    assert host_debian_mirror([oneline]) == "http://other.example/debian"
    assert host_debian_mirror([tmp_path / "missing"]) == "http://deb.debian.org/debian"


def test_lookups_are_indexed_but_answer_as_before():
    t = build_topology(pairs=3)
    assert t.node("router-b3") is next(n for n in t.nodes if n.name == "router-b3")
    with pytest.raises(KeyError, match="no node 'router-z'; there are: broker"):
        t.node("router-z")
    with pytest.raises(KeyError, match="no network 'nowhere'"):
        t.network("nowhere")
    t.pairs.clear()  # a caller's list, not the topology's
    assert [p.label for p in t.pairs] == ["a", "b", "a2", "b2", "a3", "b3"]
    assert t.is_private("10.0.1.10") and t.is_private("10.0.1.10") and not t.is_private(t.broker.address)

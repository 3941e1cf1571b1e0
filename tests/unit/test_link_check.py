"""Check 6: a router's link delay read from its LAN and WAN captures (packet records built here)."""

from __future__ import annotations

from lab.analysis.link_delays import crossings
from lab.analysis.packets import Packet
from lab.analysis.run import RunView
from lab.analysis.verdict import check_links, conditioned
from lab.topology import build_topology


def crossing(vantages: dict, router: str, private: str, public: str, remote: str, delay_s: float, n: int, t0: float):
    """`n` datagrams out through `router` and `n` back, each `delay_s` on the link each way."""
    for i in range(n):
        out, back = f"out {router} {i}".encode(), f"back {router} {i}".encode()
        t = t0 + i * 0.01
        vantages[f"{router}-lan"].append(Packet(f"{router}-lan", t, "", "", private, remote, 17, 41000, 3478, out))
        vantages[f"{router}-wan"].append(Packet(f"{router}-wan", t + delay_s, "", "", public, remote, 17, 52000, 3478, out))
        vantages[f"{router}-wan"].append(Packet(f"{router}-wan", t + 0.5, "", "", remote, public, 17, 3478, 52000, back))
        vantages[f"{router}-lan"].append(Packet(f"{router}-lan", t + 0.5 + delay_s, "", "", remote, private, 17, 3478,
                                                41000, back))


def view(link_a: str, seen_delay_a_s: float) -> RunView:
    topo = build_topology(link_a=link_a)
    caps = {f"{n.name}-{i.side}": [] for n, i in topo.captures}
    for pair, delay in ((topo.pair("a"), seen_delay_a_s), (topo.pair("b"), 0.0001)):
        crossing(caps, pair.router.name, str(pair.private_ip), str(pair.public_ip), "198.51.100.10", delay, 20, 1.0)
    for packets in caps.values():
        packets.sort(key=lambda p: p.time)
    return RunView(caps, topo)


def test_a_delay_seen_as_set_passes_and_the_lan_side_is_seen_undelayed():
    v = view("delay=50ms,jitter=5ms", 0.0512)
    seen = crossings(v, v.topology.pair("a"))
    assert len(seen.up_ms) == len(seen.down_ms) == 20 and seen.up_lost == seen.down_lost == 0
    check = check_links(v)
    assert check.ok, check.detail
    assert "router-a LAN->WAN: 20 datagrams, median 51.2 ms (set 50 ms ± 5)" in check.evidence[0]
    assert any(e.startswith("router-b WAN->LAN") and "median 0.1 ms (set 0 ms)" in e for e in check.evidence)


def test_a_delay_that_is_not_the_one_set_fails_naming_the_router_and_direction():
    check = check_links(view("delay=50ms", 0.080))
    assert not check.ok
    assert "router-a LAN->WAN: median 80.0 ms, not 50 ms ± 5" in check.detail
    assert "router-a WAN->LAN: median 80.0 ms" in check.detail


def test_a_run_without_link_conditions_has_no_link_check():
    assert not conditioned(build_topology()) and conditioned(build_topology(link_b="wifi"))
    assert not conditioned(build_topology(link_broker="satellite"))  # the broker's link is not a router's


def peer_view(reported_rtt_ms: float, captured_rtt_s: float) -> tuple[RunView, dict]:
    """Peer a's router LAN: the introduction, b's first probe 0.3 s later, a's data and b's acks."""
    from tests.helpers.signed import data, intro, probe
    from wire.protocol import Ack, Endpoint

    v = view("delay=50ms", 0.05)
    lan = v.caps["router-a-lan"]
    a, b = str(v.topology.pair("a").private_ip), "198.51.100.102"
    me, partner = Endpoint(a, 41000), Endpoint(b, 52001)
    msgs = [(5.0, "198.51.100.10", a, intro("r", "t", me, "b", partner, Endpoint("10.0.2.10", 41001))),
            (5.3, b, a, probe("r", "b", 0, False))]
    for seq in (1, 2, 3):
        msgs += [(6.0 + seq, a, b, data("r", "a", seq, f"hello #{seq} from a")),
                 (6.0 + seq + captured_rtt_s, b, a, Ack("r", "b", seq))]
    for t, src, dst, msg in msgs:
        lan.append(Packet("router-a-lan", t, "", "", src, dst, 17, 1, 2, b"x", msg))
    lan.sort(key=lambda p: p.time)
    return v, {"a": {"rtt_ms": reported_rtt_ms, "time_to_first_heard_s": 0.3}}


def test_the_peers_reported_round_trip_and_wait_are_confirmed_by_its_routers_lan_capture():
    v, reports = peer_view(200.5, 0.2)
    check = check_links(v, reports)
    assert check.ok, check.detail
    assert "peer a round trip: reported 200.5 ms, 200.0 ms at router-a-lan" in check.evidence
    assert "peer a introduction to partner: reported 300.0 ms, 300.0 ms at router-a-lan" in check.evidence


def test_a_peer_report_the_capture_does_not_bear_out_fails_the_check():
    v, reports = peer_view(120.0, 0.2)
    check = check_links(v, reports)
    assert not check.ok and "peer a reported a round trip of 120.0 ms; the capture shows 200.0 ms (± 25)" in check.detail


def test_a_peer_that_woke_late_to_its_introduction_is_still_borne_out():
    # Its clock started 14 ms after the kernel saw the introduction (measured on a busy Docker host).
    v, reports = peer_view(200.0, 0.2)
    reports["a"]["time_to_first_heard_s"] = 0.286
    assert check_links(v, reports).ok
    reports["a"]["time_to_first_heard_s"] = 0.250
    check = check_links(v, reports)
    assert not check.ok and "introduction to partner of 250.0 ms; the capture shows 300.0 ms (± 30)" in check.detail


def test_with_jitter_a_median_may_stray_by_chance_but_not_by_a_wrong_delay():
    # 20 datagrams through ±30 ms: the median's tolerance is 5 + 3 × 30 / √20 ≈ 25 ms
    assert check_links(view("delay=100ms,jitter=30ms", 0.087)).ok  # 13 ms low: chance, with 30 ms of jitter
    check = check_links(view("delay=100ms,jitter=30ms", 0.140))
    assert not check.ok and "median 140.0 ms, not 100 ms ± 25.1" in check.detail
    assert not check_links(view("delay=100ms", 0.087)).ok  # without jitter, 5 ms

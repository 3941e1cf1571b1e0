"""The path of any program's traffic, from built pcaps that carry no natlab message at all."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable

from lab.analysis.packets import load_run
from lab.analysis.program_paths import program_path
from lab.analysis.program_verdict import judge_programs
from lab.analysis.run import RunView, read_run
from lab.run_format import PROGRAMS_KIND
from lab.topology import SAME_LAN, TURN_PORT, build_topology
from tests.helpers.pcap_factory import RunBuilder
from wire.protocol import Endpoint

TOPO = build_topology(nat_a="symmetric", nat_b="symmetric")
A, B = TOPO.pair("a"), TOPO.pair("b")
RELAY = Endpoint(str(TOPO.relay.address), TURN_PORT)
SUPERNODE = Endpoint(str(TOPO.wan_host.address), 7654)


def ep(pair, public: bool, port: int = 5000) -> Endpoint:
    return Endpoint(str(pair.public_ip if public else pair.private_ip), port)


def direct(b: RunBuilder, src, dst, payload: bytes, tcp_seq: int | None = None) -> None:
    """src's datagram (or TCP segment) to dst's public address, through both NATs to dst's peer."""
    b.send({f"{src.router.name}-lan": (ep(src, False), ep(dst, True)), f"{src.router.name}-wan": (ep(src, True), ep(dst, True)),
            f"{dst.router.name}-wan": (ep(src, True), ep(dst, True)), f"{dst.router.name}-lan": (ep(src, True), ep(dst, False))},
           None, src.peer.name, dst.peer.name, payload=payload, tcp_seq=tcp_seq)


def relayed(b: RunBuilder, src, dst, payload: bytes) -> None:
    framed = struct.pack("!HH", 0x4000, len(payload)) + payload
    b.send({f"{src.router.name}-lan": (ep(src, False, 6000), RELAY), f"{src.router.name}-wan": (ep(src, True, 6000), RELAY),
            "relay-wan": (ep(src, True, 6000), RELAY)}, None, src.peer.name, "relay", payload=framed)
    b.send({"relay-wan": (RELAY, ep(dst, True, 6000)), f"{dst.router.name}-wan": (RELAY, ep(dst, True, 6000)),
            f"{dst.router.name}-lan": (RELAY, ep(dst, False, 6000))}, None, "relay", dst.peer.name, payload=framed)


def via_wan_host(b: RunBuilder, src, dst, sent: bytes, forwarded: bytes) -> None:
    """src sends `sent` to the user's WAN program; it sends `forwarded` on to dst."""
    b.send({f"{src.router.name}-lan": (ep(src, False, 7000), SUPERNODE),
            f"{src.router.name}-wan": (ep(src, True, 7000), SUPERNODE),
            "wan-host-wan": (ep(src, True, 7000), SUPERNODE)}, None, src.peer.name, "wan-host", payload=sent)
    b.send({"wan-host-wan": (SUPERNODE, ep(dst, True, 7000)), f"{dst.router.name}-wan": (SUPERNODE, ep(dst, True, 7000)),
            f"{dst.router.name}-lan": (SUPERNODE, ep(dst, False, 7000))}, None, "wan-host", dst.peer.name,
           payload=forwarded)


def build(tmp_path, steps, programs=None, expect="any"):
    b = RunBuilder(TOPO)
    for step in steps:
        step(b)
    b.write(tmp_path)
    record = {"format": 1, "kind": PROGRAMS_KIND, "run_id": "built", "topology": TOPO.to_json(),
              "config": {"a": "x", "b": "y", "duration_s": 5, "expect": expect, "relay": "auto"},
              "programs": programs or {s: {"exit_code": 0, "ended": "exited", "seconds": 1.0, "head": []} for s in "ab"}}
    (tmp_path / "run.json").write_text(json.dumps(record))
    return RunView(load_run(tmp_path), TOPO)


def test_traffic_between_the_two_public_addresses_is_direct(tmp_path):
    view = build(tmp_path, [lambda b: direct(b, A, B, b"\x17" * 100), lambda b: direct(b, B, A, b"\x17" * 50)])
    path = program_path(view, TOPO.punch_pairs[0])
    assert path.path == "direct" and path.first_direct["a"] is not None and path.first_direct["b"] is not None
    assert path.arrivals[0].bytes["direct"] == 50 and path.arrivals[1].bytes["direct"] == 100


def test_traffic_through_turn_channels_is_relayed_and_a_later_direct_path_wins_when_it_carries_more(tmp_path):
    steps = [lambda b: relayed(b, A, B, b"x" * 200), lambda b: relayed(b, B, A, b"y" * 200)]
    assert program_path(build(tmp_path / "r", steps), TOPO.punch_pairs[0]).path == "relayed"
    upgraded = steps + [lambda b: direct(b, A, B, b"z" * 300), lambda b: direct(b, B, A, b"z" * 300)]
    path = program_path(build(tmp_path / "u", upgraded), TOPO.punch_pairs[0])
    assert path.path == "direct" and path.after_direct == {"direct": 300, "local": 0, "relayed": 0}  # from b->a, the later first
    assert path.upgraded_at == path.first_direct["a"]  # b->a is the later: from then on, direct
    assert path.timeline()["direct"]["packets"] == [2] and path.timeline()["relayed"]["bytes"] == [408]


def test_a_wan_program_that_forwards_what_the_partner_sent_it_is_a_relay_and_its_own_messages_signalling(tmp_path):
    frame_ab, frame_ba = bytes(range(100)), bytes(range(100, 200))
    steps = [lambda b: via_wan_host(b, A, B, b"HDR-A" + frame_ab, b"HDR-FWD" + frame_ab),  # header rewritten
             lambda b: via_wan_host(b, B, A, b"HDR-B" + frame_ba, b"HDR-FWD" + frame_ba)]
    path = program_path(build(tmp_path / "fwd", steps), TOPO.punch_pairs[0])
    assert path.path == "relayed" and path.arrivals[0].relayed_by == {"wan-host": 107}
    assert "relayed by wan-host 1 packets/107 B" in path.reason
    own = [lambda b: via_wan_host(b, A, B, b"register " + frame_ab, b"registered, welcome" * 5),
           lambda b: via_wan_host(b, B, A, b"register " + frame_ba, b"registered, welcome" * 5)]
    path = program_path(build(tmp_path / "own", own), TOPO.punch_pairs[0])
    assert path.path == "none" and path.arrivals[0].packets["signalling"] == 1


def test_between_peers_on_one_lan_traffic_from_the_private_address_is_local_and_wins_over_a_hairpin(tmp_path):
    topo = build_topology(shape=SAME_LAN, nat_a="port-restricted,hairpin=on")
    a, b = topo.pair("a"), topo.pair("b")

    def lan(src, dst, payload: bytes, hairpinned: bool = False) -> Callable[[RunBuilder], None]:
        seen = (ep(src, hairpinned), ep(dst, False))  # from the router's public address when hairpinned
        return lambda builder: builder.send({"peer-a-lan": seen, "peer-b-lan": seen}, None, src.peer.name,
                                            dst.peer.name, payload=payload)

    builder = RunBuilder(topo)
    for step in (lan(a, b, b"h" * 10, True), lan(b, a, b"h" * 10, True), lan(a, b, b"l" * 90), lan(b, a, b"l" * 90)):
        step(builder)
    builder.write(tmp_path)
    path = program_path(RunView(load_run(tmp_path), topo), topo.punch_pairs[0])
    assert path.path == "local"
    assert path.arrivals[0].bytes == {"direct": 10, "local": 90} and path.opened("local") is not None


def test_one_way_only_is_no_path(tmp_path):
    path = program_path(build(tmp_path, [lambda b: direct(b, A, B, b"q" * 10)]), TOPO.punch_pairs[0])
    assert path.path == "none"


def test_the_verdict_holds_the_path_to_expect_and_reports_a_failed_program(tmp_path):
    steps = [lambda b: relayed(b, A, B, b"x" * 20), lambda b: relayed(b, B, A, b"y" * 20)]
    build(tmp_path, steps, expect="direct")
    verdict = judge_programs(read_run(tmp_path))
    assert not verdict.check("1").ok and "pair 1: relayed, not direct" in verdict.check("1").detail
    row = verdict.paths[0]
    assert (row["pair"], row["path"], row["expected"], row["as_expected"]) == (1, "relayed", "direct", False)
    assert row["upgraded_at"] is None and sum(row["per_second"]["relayed"]["packets"]) == 2
    failed = {"a": {"exit_code": 2, "ended": "exited", "seconds": 0.1, "head": ["boom"]},
              "b": {"exit_code": -15, "ended": "stopped", "seconds": 5.0, "head": []}}
    build(tmp_path, steps, programs=failed)
    verdict = judge_programs(read_run(tmp_path))
    assert verdict.check("1").ok and verdict.check("2").ok
    assert not verdict.check("3").ok and verdict.check("3").detail == "a: exited with exit code 2: boom"


def test_datagrams_from_one_of_the_relays_allocations_are_relayed_too(tmp_path):
    """ICE may pair a relayed candidate with a reflexive one: the partner's data then reach the peer
    unframed, from the relay's allocation (its relayed address), not its TURN port."""
    allocation = Endpoint(RELAY.ip, 62166)

    def from_allocation(b: RunBuilder, dst) -> None:
        b.send({"relay-wan": (allocation, ep(dst, True)), f"{dst.router.name}-wan": (allocation, ep(dst, True)),
                f"{dst.router.name}-lan": (allocation, ep(dst, False))}, None, "relay", dst.peer.name, payload=b"d" * 30)

    path = program_path(build(tmp_path, [lambda b: from_allocation(b, A), lambda b: relayed(b, A, B, b"x" * 20)]),
                        TOPO.punch_pairs[0])
    assert path.path == "relayed" and path.arrivals[0].bytes["relayed"] == 30


def test_each_program_is_told_the_wan_hosts_address_on_its_own_segment():
    from lab.experiment.user_run import program_environment, wan_environment

    topo = build_topology(pairs=2)
    a2 = topo.pair("a2")
    env = program_environment(topo, a2, "/box", "/files", 30, None, wan=True)
    assert env["NATLAB_WAN"] == "203.0.113.30" and env["NATLAB_MAILBOX"] == "/box/pair-2"
    assert env["NATLAB_OUT"] == "/box/out-a2" and env["NATLAB_PARTNER"] == "b2"
    assert "NATLAB_WAN" not in program_environment(topo, a2, "/box", "/files", 30, None)
    wan = wan_environment(topo, "/box", "/files", 30)
    assert wan["NATLAB_WAN_IPS"] == "198.51.100.30,203.0.113.30" and wan["NATLAB_OUT"] == "/box/out-wan"
    assert wan["NATLAB_PAIRS"] == "2" and wan["NATLAB_STUN"] == env["NATLAB_STUN"]


def test_the_report_of_a_program_run_shows_its_paths_a_plot_and_one_arrow_per_flow(tmp_path):
    from lab.report.run_report import RunReport, write_report

    steps = [lambda b, i=i: direct(b, A, B, b"ab%03d" % i * 20) for i in range(5)]
    steps += [lambda b, i=i: direct(b, B, A, b"ba%03d" % i * 20) for i in range(5)]
    steps += [lambda b: via_wan_host(b, A, B, b"hello " + bytes(range(40)), b"fwd " + bytes(range(40)))]
    build(tmp_path, steps)
    run = read_run(tmp_path)
    verdict = judge_programs(run)
    ladder = RunReport(run).ladder
    assert ladder.unit == "flows"
    by_ends = {(a.src, a.dst): a for a in ladder.arrows}
    assert set(by_ends) == {("peer-a", "peer-b"), ("peer-b", "peer-a"), ("peer-a", "wan-host"), ("wan-host", "peer-b")}
    assert "5 × 500 B" in by_ends["peer-a", "peer-b"].what and by_ends["peer-a", "peer-b"].channel.name == "DIRECT"
    assert by_ends["wan-host", "peer-b"].channel.name == "RELAY"
    files = write_report(tmp_path, verdict, run)
    text = files.report.read_text()
    assert "## Paths" in text and "| 1 | direct |" in text and "(paths.png)" in text
    assert files.paths.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and files.ladder.exists()


def test_tcp_between_the_public_addresses_is_direct_and_drawn_as_one_flow_each_way(tmp_path):
    from lab.report.run_report import RunReport

    steps = [lambda b, i=i: direct(b, A, B, b"GET /%d" % i, tcp_seq=1000 + 10 * i) for i in range(4)]
    steps += [lambda b, i=i: direct(b, B, A, b"200 OK %d" % i, tcp_seq=5000 + 10 * i) for i in range(4)]
    view = build(tmp_path, steps)
    assert {p.seq for p in view.lan(B) if p.proto == 6 and p.dst == str(B.private_ip)} == {1000, 1010, 1020, 1030}
    path = program_path(view, TOPO.punch_pairs[0])
    assert path.path == "direct" and path.arrivals[1].bytes["direct"] == sum(len(b"GET /%d" % i) for i in range(4))
    ladder = RunReport(read_run(tmp_path)).ladder
    tcp = [a for a in ladder.arrows if a.what.startswith("tcp")]
    assert [(a.src, a.dst) for a in tcp] == [("peer-a", "peer-b"), ("peer-b", "peer-a")]
    assert all("4 ×" in a.what for a in tcp)


def test_a_flow_names_the_stun_and_turn_messages_it_carries(tmp_path):
    from lab.report.run_report import RunReport

    steps = [lambda b, i=i: relayed(b, A, B, b"x%02d" % i * 10) for i in range(3)]
    build(tmp_path, steps)
    arrows = {(a.src, a.dst): a for a in RunReport(read_run(tmp_path)).ladder.arrows}
    assert "(ChannelData): 3 ×" in arrows["peer-a", "relay"].what and arrows["peer-a", "relay"].channel.name == "RELAY"


def test_the_wan_program_is_awaited_on_a_port_of_its_own_not_one_the_node_had_already():
    from concurrent.futures import Future

    from lab.engines.base import ExecResult
    from lab.experiment.user_run import wait_listening

    header = "  sl  local_address rem_address   st\n"
    dns = "   0: 0B00007F:9DB7 00000000:0000 0A\n"  # Docker's DNS, 127.0.0.11:40375, in every container
    ours = "   1: 00000000:2328 00000000:0000 0A\n"  # 0.0.0.0:9000

    class Node:
        polls = 0

        def exec(self, node, argv, stdin=None):
            self.polls += 1
            tcp = header + dns + (ours if self.polls > 3 else "")
            return ExecResult(0, f"==> /proc/net/udp <==\n{header}\n==> /proc/net/tcp <==\n{tcp}", "")

    said = []
    wait_listening(Node(), "wan-host", {("tcp", 40375)}, Future(), said.append)
    assert said == [said[0]] and said[0].startswith("the WAN program listens on tcp/9000 (after")


def matrix_cell(tmp_path, steps, relay: str, codes=(0, 0)):
    """One run of programs in the matrix (TOPO: symmetric × symmetric), started at the builder's clock."""
    from lab.analysis.matrix import Matrix, observe

    programs = {s: {"exit_code": c, "ended": "exited", "seconds": 1.0, "head": [f"{s} said {c}"],
                    "started_at": 1_700_000_000.0} for s, c in zip("ab", codes)}
    build(tmp_path, steps, programs)
    record = json.loads((tmp_path / "run.json").read_text())
    record["config"]["relay"] = relay
    (tmp_path / "run.json").write_text(json.dumps(record))
    matrix = Matrix(("symmetric",), ("lan",), relay, programs={"a": "x", "b": "y", "wan": ""})
    observe(matrix, read_run(tmp_path))
    return matrix, matrix.cell("symmetric", "symmetric", "lan")


def test_in_the_matrix_programs_are_held_to_what_the_nats_allow_with_the_relay_they_were_offered(tmp_path):
    both_relayed = [lambda b: relayed(b, A, B, b"x" * 200), lambda b: relayed(b, B, A, b"y" * 200)]
    matrix, cell = matrix_cell(tmp_path / "r", both_relayed, "auto")
    assert (cell.expected, cell.observed, cell.agree) == ("relayed", "relayed", True)
    assert "offered the lab's TURN relay" in cell.reason and matrix.clock == "the programs' start"
    assert 0 < cell.seconds < 0.1  # from the programs' start to the relay carrying both ways
    assert cell.observations[0].programs == ("a: exited with 0 after 1.0s: a said 0", "b: exited with 0 after 1.0s: b said 0")
    # offered no relay, the programs that found no path failed as the NATs say they must: that holds,
    # their exit codes aside; offered one and not using it falls short
    one_way = [lambda b: direct(b, A, B, b"z" * 100)]
    _, cell = matrix_cell(tmp_path / "o", one_way, "off", codes=(1, 1))
    assert (cell.expected, cell.observed, cell.agree, cell.failed_checks) == ("failed", "failed", True, ())
    matrix, cell = matrix_cell(tmp_path / "f", one_way, "auto", codes=(1, 1))
    assert (cell.expected, cell.observed, cell.agree) == ("relayed", "failed", False)
    from lab.analysis.matrix import all_programs_failed

    assert all_programs_failed(matrix) == "a: exited with 1 after 1.0s: a said 1"


def test_a_program_that_failed_on_a_path_the_nats_allowed_fails_its_cell(tmp_path):
    both_relayed = [lambda b: relayed(b, A, B, b"x" * 200), lambda b: relayed(b, B, A, b"y" * 200)]
    _, cell = matrix_cell(tmp_path, both_relayed, "auto", codes=(0, 3))
    assert cell.observed == "relayed" and not cell.agree and cell.failed_checks == ("3",)

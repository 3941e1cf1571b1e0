"""The peer hears only its partner: the session proof, on real sockets on 127.0.0.1.

Peer a punches towards b; a third socket (the attacker, who knows both endpoints and even the
session nonce, which travels in clear) sends probes and data that claim to be b's. Only b's own,
signed with the session key, count, and only a newer one moves a's target.
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from peers.peer import Channel, HolePunch, path_name
from tests.helpers.signed import SESSION, data, intro, keys, probe
from wire.auth import sign
from wire.protocol import Data, Endpoint, Probe

ROOM = "r"


@pytest.fixture
def sockets():
    chans = {name: Channel(("127.0.0.1", 0)) for name in ("a", "b", "attacker")}
    yield chans
    for chan in chans.values():
        chan.close()


def punch_of_a(chans: dict[str, Channel]) -> HolePunch:
    a, b = chans["a"].local, chans["b"].local
    return HolePunch(chans["a"], intro(ROOM, "t1", a, "b", b, Endpoint("10.99.0.1", b.port)), "a", 0.0, keys(ROOM))


def deliver(chans: dict[str, Channel], sender: str, hole: HolePunch, msg) -> bool:
    """Send msg over the loopback from `sender` to a, receive it there, let a's HolePunch judge it."""
    chans[sender].send(msg, chans["a"].local)
    got = chans["a"].receive(time.monotonic() + 2)
    assert got is not None
    return hole.on_datagram(got[0], got[1], time.monotonic())


def test_the_partners_signed_probe_opens_the_hole(sockets):
    hole = punch_of_a(sockets)
    assert deliver(sockets, "b", hole, probe(ROOM, "b", 0, False))
    assert hole.open and hole.heard_from == sockets["b"].local and hole.rejected == 0
    assert hole.path.startswith("public endpoint")


@pytest.mark.parametrize("forged", [
    probe(ROOM, "b", 5, True, session="66" * 16),  # another session's key
    dataclasses.replace(probe(ROOM, "b", 5, True), mac=""),  # unsigned
    dataclasses.replace(probe(ROOM, "b", 5, True), seq=6),  # signed, then altered
    probe(ROOM, "c", 5, True),  # signed by someone in the session, but not the partner
    probe("other", "b", 5, True),  # another room
    sign(Probe(ROOM, "b", 5, True), keys("other").session(SESSION)),  # the same nonce in another room
    data(ROOM, "b", 1, "forged", session="66" * 16),
], ids=["other-session", "unsigned", "altered", "not-the-partner", "other-room", "other-room-key", "data"])
def test_spoofed_session_traffic_is_ignored(sockets, forged):
    hole = punch_of_a(sockets)
    target = hole.target
    assert not deliver(sockets, "attacker", hole, forged)
    assert not hole.open and hole.target == target and hole.rejected == 1 and hole.probes_sent == 0


def test_a_replayed_probe_from_elsewhere_does_not_move_the_target(sockets):
    hole = punch_of_a(sockets)
    genuine = probe(ROOM, "b", 3, True)
    assert deliver(sockets, "b", hole, genuine)
    assert not deliver(sockets, "attacker", hole, genuine)  # captured and replayed
    assert hole.target == sockets["b"].local and hole.rejected == 1


def test_replayed_data_is_the_partners_but_moves_nothing(sockets):
    hole = punch_of_a(sockets)
    assert deliver(sockets, "b", hole, data(ROOM, "b", 2, "hi"))
    assert deliver(sockets, "attacker", hole, data(ROOM, "b", 2, "hi"))  # the caller dedupes by seq
    assert hole.target == sockets["b"].local


def test_probes_go_to_both_endpoints_and_an_unreachable_one_costs_nothing(sockets):
    a, b = sockets["a"].local, sockets["b"].local
    # The private endpoint is another port on the loopback: both get the probe.
    other = Channel(("127.0.0.1", 0))
    try:
        hole = HolePunch(sockets["a"], intro(ROOM, "t1", a, "b", b, other.local), "a", 0.0, keys(ROOM))
        hole.tick(0.0)
        for chan in (sockets["b"], other):
            msg, _ = chan.receive(time.monotonic() + 2)
            assert isinstance(msg, Probe) and msg.sender == "a"
        assert hole.probes_sent == 1
    finally:
        other.close()


def test_with_public_candidates_only_the_private_endpoint_gets_no_probe(sockets):
    a, b = sockets["a"].local, sockets["b"].local
    private = Channel(("127.0.0.1", 0))
    try:
        hole = HolePunch(sockets["a"], intro(ROOM, "t1", a, "b", b, private.local), "a", 0.0, keys(ROOM),
                         candidates="public")
        hole.tick(0.0)
        msg, _ = sockets["b"].receive(time.monotonic() + 2)
        assert isinstance(msg, Probe)
        assert private.receive(time.monotonic() + 0.3) is None
    finally:
        private.close()


def test_once_the_partners_private_endpoint_answers_its_public_one_no_longer_moves_the_target(sockets):
    # Peers on one LAN behind a hairpinning NAT hear each other both ways: the local path is kept.
    a, b = sockets["a"].local, sockets["b"].local
    sockets["private"] = Channel(("127.0.0.1", 0))
    hole = HolePunch(sockets["a"], intro(ROOM, "t1", a, "b", b, sockets["private"].local), "a", 0.0, keys(ROOM))
    assert deliver(sockets, "private", hole, probe(ROOM, "b", 1, False))
    assert deliver(sockets, "b", hole, probe(ROOM, "b", 2, True))  # the same partner, hairpinned
    assert hole.target == sockets["private"].local
    assert hole.path.startswith("private endpoint")


def test_path_names_say_which_endpoint_answered():
    i = intro(ROOM, "t", Endpoint("198.51.100.101", 1), "b", Endpoint("198.51.100.102", 2), Endpoint("10.0.2.10", 3))
    assert path_name(Endpoint("10.0.2.10", 3), i).startswith("private endpoint")
    assert path_name(Endpoint("198.51.100.102", 2), i).startswith("public endpoint")
    assert "another port" in path_name(Endpoint("198.51.100.102", 9), i)


def test_data_is_signed_for_the_session(sockets):
    hole = punch_of_a(sockets)
    hole.send(Data(ROOM, "a", 1, "x"), sockets["b"].local)
    msg, _ = sockets["b"].receive(time.monotonic() + 2)
    assert msg == data(ROOM, "a", 1, "x")


def fallen_back(chans: dict[str, Channel], for_good: bool = False) -> HolePunch:
    """a, having heard b directly once, gives up on the direct path for the relayed address (a loopback
    socket, the attacker's, stands in for b's TURN allocation)."""
    a, b, relayed = chans["a"].local, chans["b"].local, chans["attacker"].local
    hole = HolePunch(chans["a"], dataclasses.replace(
        intro(ROOM, "t1", a, "b", b, Endpoint("10.99.0.1", b.port)), partner_relay=relayed), "a", 0.0, keys(ROOM))
    assert deliver(chans, "b", hole, probe(ROOM, "b", 0, False)) and hole.open and not hole.confirmed
    assert chans["b"].receive(time.monotonic() + 2) is not None  # a's answer
    hole.relay_over(time.monotonic(), for_good)
    assert hole.relayed and not hole.open and hole.candidates == [relayed] and hole.target == relayed
    return hole


def test_after_falling_back_only_the_partners_relayed_address_is_probed_and_moves_the_target(sockets):
    relayed = sockets["attacker"].local
    hole = fallen_back(sockets)
    assert hole.tick(time.monotonic()) is not None  # it probes the relayed address
    got = sockets["attacker"].receive(time.monotonic() + 2)
    assert got is not None and isinstance(got[0], Probe) and got[0].sender == "a"
    assert deliver(sockets, "b", hole, probe(ROOM, "b", 1, False))  # b, still punching, probes directly ...
    answer = sockets["b"].receive(time.monotonic() + 2)  # ... and is answered directly, acknowledged
    assert answer is not None and isinstance(answer[0], Probe) and answer[0].ack
    assert hole.relayed and hole.target == relayed and not hole.open  # the relayed path stays
    assert deliver(sockets, "attacker", hole, probe(ROOM, "b", 2, True))  # b's probe, through the relay
    assert hole.open and hole.confirmed and hole.heard_from == relayed and hole.upgraded_at is None
    assert hole.path == f"relayed address {relayed} (its TURN allocation)"


@pytest.mark.parametrize("proof", [probe(ROOM, "b", 1, True), data(ROOM, "b", 1, "hello")], ids=["ack", "data"])
def test_a_partner_heard_directly_that_hears_us_undoes_the_fallback(sockets, proof):
    """The introductions came seconds apart: a gave up while b still punched, and b heard a's answer."""
    b = sockets["b"].local
    hole = fallen_back(sockets)
    assert deliver(sockets, "b", hole, proof)
    assert not hole.relayed and hole.target == b and hole.confirmed and hole.upgraded_at is not None
    assert hole.path.startswith("public endpoint") and hole.tick(time.monotonic()) is None  # no more probing
    assert hole.time_to_punch == pytest.approx(hole.heard_at)  # timed from the first punch, not the fallback


def test_a_forced_relay_is_never_left_for_the_direct_path(sockets):
    relayed = sockets["attacker"].local
    hole = fallen_back(sockets, for_good=True)
    assert deliver(sockets, "b", hole, data(ROOM, "b", 1, "hello"))  # its data still count ...
    assert hole.relayed and hole.target == relayed and not hole.open  # ... the relay stays
    assert sockets["b"].receive(time.monotonic() + 0.3) is None  # and nothing goes to b directly
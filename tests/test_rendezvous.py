"""The broker's rendezvous logic, without sockets."""

from __future__ import annotations

from lab.proto import Endpoint, Error, Intro, Ping, Pong, Probe, Register, Waiting, decode, encode
from server.rendezvous import Rendezvous

A = Endpoint("198.51.100.101", 4000)
B = Endpoint("198.51.100.102", 5000)
C = Endpoint("198.51.100.66", 6000)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def answers(rv: Rendezvous, msg, source: Endpoint) -> list[tuple[object, Endpoint]]:
    return [(decode(data), dest) for data, dest in rv.handle(encode(msg), source)]


def test_first_member_waits_and_learns_its_public_endpoint():
    rv = Rendezvous()
    assert answers(rv, Register("r", "a", "t1"), A) == [(Waiting("r", "t1", A), A)]


def test_second_member_completes_the_room_and_both_are_introduced():
    rv = Rendezvous()
    answers(rv, Register("r", "a", "t1"), A)
    got = answers(rv, Register("r", "b", "t2"), B)
    assert got == [(Intro("r", "t2", B, "a", A), B), (Intro("r", "t1", A, "b", B), A)]
    assert rv.stats.introductions == 1


def test_a_retransmitted_register_gets_the_same_answer_and_no_new_introduction():
    rv = Rendezvous()
    answers(rv, Register("r", "a", "t1"), A)
    answers(rv, Register("r", "b", "t2"), B)
    again = answers(rv, Register("r", "b", "t2"), B)
    assert again == [(Intro("r", "t2", B, "a", A), B)]
    assert answers(rv, Register("r", "a", "t1"), A) == [(Intro("r", "t1", A, "b", B), A)]
    assert rv.stats.introductions == 1


def test_rooms_are_independent():
    rv = Rendezvous()
    answers(rv, Register("r1", "a", "t"), A)
    assert answers(rv, Register("r2", "b", "t"), B) == [(Waiting("r2", "t", B), B)]


def test_a_third_member_is_refused():
    rv = Rendezvous()
    answers(rv, Register("r", "a", "t"), A)
    answers(rv, Register("r", "b", "t"), B)
    [(reply, dest)] = answers(rv, Register("r", "c", "t"), C)
    assert isinstance(reply, Error) and reply.code == "room-full" and dest == C


def test_a_member_whose_mapping_changed_is_reintroduced():
    rv = Rendezvous()
    answers(rv, Register("r", "a", "t1"), A)
    answers(rv, Register("r", "b", "t2"), B)
    moved = Endpoint(A.ip, 4001)
    got = answers(rv, Register("r", "a", "t1"), moved)
    assert (Intro("r", "t2", B, "a", moved), B) in got


def test_silent_members_expire():
    clock = Clock()
    rv = Rendezvous(ttl=30, clock=clock)
    answers(rv, Register("r", "a", "t1"), A)
    clock.now = 31
    assert answers(rv, Register("r", "b", "t2"), B) == [(Waiting("r", "t2", B), B)]
    assert rv.stats.expired == 1


def test_malformed_input_gets_a_short_error_and_the_broker_keeps_serving():
    rv = Rendezvous()
    for junk in (b"", b"\xff" * 100, b"{", b'{"natlab":1,"type":"intro"}', b"\x00\x01\x00\x00" + b"\x00" * 16):
        [(reply, dest)] = [(decode(d), e) for d, e in rv.handle(junk, C)]
        assert isinstance(reply, Error) and dest == C
    assert rv.stats.malformed == 5
    assert answers(rv, Register("r", "a", "t"), A) == [(Waiting("r", "t", A), A)]


def test_ping_is_answered_and_peer_traffic_is_not():
    rv = Rendezvous()
    assert answers(rv, Ping("x", 3), A) == [(Pong("x", 3), A)]
    assert answers(rv, Probe("r", "a", 0, False), A) == []
    assert answers(rv, Error("e", "r"), A) == []

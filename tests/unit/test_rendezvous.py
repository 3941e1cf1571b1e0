"""The broker's rendezvous logic (protocol v2), without sockets."""

from __future__ import annotations

import dataclasses

from server.limits import Limits
from server.rendezvous import Rendezvous, bounded_error
from tests.helpers.signed import BROKER_KEY, SESSION, keys, register
from wire.auth import verify
from wire.protocol import (
    Data,
    Endpoint,
    Error,
    Intro,
    Ping,
    Pong,
    Probe,
    Register,
    Waiting,
    decode,
    encode,
)

A = Endpoint("198.51.100.101", 4000)
B = Endpoint("198.51.100.102", 5000)
C = Endpoint("198.51.100.66", 6000)
LAN_A = Endpoint("10.0.1.10", 4000)
LAN_B = Endpoint("10.0.2.10", 5000)
WALL = 1_700_000_000.0


class Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def broker(limits: Limits = Limits(), clock: Clock | None = None, sessions: list[str] | None = None) -> Rendezvous:
    clock = clock or Clock()
    pool = iter(sessions or [SESSION, "22" * 16, "33" * 16, "44" * 16])
    return Rendezvous(BROKER_KEY, limits, clock=clock, wall=lambda: WALL + clock.now, new_session=lambda: next(pool))


def send(rv: Rendezvous, data: bytes, source: Endpoint) -> list[tuple[object, Endpoint]]:
    return [(decode(out), dest) for out, dest in rv.handle(data, source)]


def reg(rv: Rendezvous, room: str, peer: str, txn: str, source: Endpoint, private: Endpoint, **kw):
    return send(rv, encode(register(room, peer, txn, private, ts=rv.wall(), **kw)), source)


def unsigned(msg):
    return dataclasses.replace(msg, mac="")


def test_first_member_waits_and_learns_its_public_endpoint_signed_by_the_broker():
    rv = broker()
    [(reply, dest)] = reg(rv, "r", "a", "t1", A, LAN_A)
    assert unsigned(reply) == Waiting("r", "t1", A) and dest == A
    assert verify(reply, keys("r").from_broker)


def test_second_member_completes_the_room_and_both_learn_public_private_and_session():
    rv = broker()
    reg(rv, "r", "a", "t1", A, LAN_A)
    got = reg(rv, "r", "b", "t2", B, LAN_B)
    assert [(unsigned(m), d) for m, d in got] == [
        (Intro("r", "t2", B, "a", A, LAN_A, SESSION), B),
        (Intro("r", "t1", A, "b", B, LAN_B, SESSION), A),
    ]
    assert all(verify(m, keys("r").from_broker) for m, _ in got)
    assert rv.stats.introductions == 1


def test_a_retransmitted_register_gets_the_same_answer_and_no_new_introduction():
    rv = broker()
    reg(rv, "r", "a", "t1", A, LAN_A)
    reg(rv, "r", "b", "t2", B, LAN_B)
    [(again, dest)] = reg(rv, "r", "b", "t2", B, LAN_B)
    assert unsigned(again) == Intro("r", "t2", B, "a", A, LAN_A, SESSION) and dest == B
    assert rv.stats.introductions == 1


def test_rooms_are_independent():
    rv = broker()
    reg(rv, "r1", "a", "t", A, LAN_A)
    [(reply, _)] = reg(rv, "r2", "b", "t", B, LAN_B)
    assert isinstance(reply, Waiting)


def test_a_third_member_is_refused():
    rv = broker()
    reg(rv, "r", "a", "t", A, LAN_A)
    reg(rv, "r", "b", "t", B, LAN_B)
    [(reply, dest)] = reg(rv, "r", "c", "t", C, LAN_A)
    assert isinstance(reply, Error) and reply.code == "room-full" and dest == C
    assert rv.stats.dropped["room-full"] == 1


def test_a_member_whose_mapping_changed_is_reintroduced_in_the_same_session():
    rv = broker()
    reg(rv, "r", "a", "t1", A, LAN_A)
    reg(rv, "r", "b", "t2", B, LAN_B)
    moved = Endpoint(A.ip, 4001)
    got = reg(rv, "r", "a", "t1", moved, LAN_A)
    assert (Intro("r", "t2", B, "a", moved, LAN_A, SESSION), B) in [(unsigned(m), d) for m, d in got]


def test_a_member_that_starts_again_gets_a_new_session_for_both():
    rv = broker()
    reg(rv, "r", "a", "t1", A, LAN_A)
    reg(rv, "r", "b", "t2", B, LAN_B)
    got = reg(rv, "r", "a", "t9", A, LAN_A)  # a new transaction: a new process
    assert {m.session for m, _ in got} == {"22" * 16} and {d for _, d in got} == {A, B}


def test_silent_members_expire_and_rooms_end_after_their_lifetime():
    clock = Clock()
    rv = broker(Limits(member_ttl_s=30, room_lifetime_s=100), clock)
    reg(rv, "r", "a", "t1", A, LAN_A)
    clock.now = 31
    [(reply, _)] = reg(rv, "r", "b", "t2", B, LAN_B)
    assert isinstance(reply, Waiting) and rv.stats.expired_members == 1
    for t in range(40, 101, 20):  # b keeps the room alive by registering, but not past its lifetime
        clock.now = t
        reg(rv, "r", "b", "t2", B, LAN_B)
    clock.now = 132
    rv.expire()
    assert rv.rooms == {} and rv.stats.expired_rooms == 1


# -- authentication ------------------------------------------------------------------------------
def test_a_register_without_the_room_secret_is_refused_and_changes_nothing():
    rv = broker()
    reg(rv, "r", "a", "t1", A, LAN_A)
    reg(rv, "r", "b", "t2", B, LAN_B)
    before = {n: dict(r.members) for n, r in rv.rooms.items()}
    for peer in ("a", "b", "c"):  # replace a member, or join as a third
        [(reply, dest)] = reg(rv, "r", peer, "evil", C, C, secret_keys=keys("another-room"))
        assert isinstance(reply, Error) and reply.code == "unauthorized" and dest == C
        [(reply, _)] = send(rv, encode(unsigned(register("r", peer, "evil", C, ts=rv.wall()))), C)
        assert reply.code == "unauthorized"
    assert {n: dict(r.members) for n, r in rv.rooms.items()} == before
    assert rv.stats.dropped["unauthenticated"] == 6 and rv.stats.introductions == 1


def test_a_replayed_register_is_dropped_silently_even_from_the_original_source():
    rv = broker()
    genuine = encode(register("r", "a", "t1", LAN_A, ts=rv.wall()))
    assert len(send(rv, genuine, A)) == 1
    reg(rv, "r", "b", "t2", B, LAN_B)
    assert send(rv, genuine, C) == [] and send(rv, genuine, A) == []
    assert rv.rooms["r"].members["a"].endpoint == A  # the replay did not move a to C
    assert rv.stats.dropped["replay"] == 2


def test_registers_outside_the_clock_window_are_refused():
    rv = broker(Limits(clock_skew_s=30))
    for ts in (rv.wall() - 31, rv.wall() + 31):
        [(reply, _)] = send(rv, encode(register("r", "a", "t", LAN_A, ts=ts)), A)
        assert reply.code == "stale"
    assert rv.rooms == {} and rv.stats.dropped["stale"] == 2


def test_replay_entries_are_forgotten_once_a_replay_would_be_stale_anyway():
    clock = Clock()
    rv = broker(Limits(clock_skew_s=30), clock)
    reg(rv, "r", "a", "t1", A, LAN_A)
    assert len(rv.replays) == 1
    clock.now = 62
    rv.expire()
    assert len(rv.replays) == 0


# -- bounds --------------------------------------------------------------------------------------
def test_the_number_of_rooms_is_bounded():
    rv = broker(Limits(max_rooms=3))
    for i in range(5):
        reg(rv, f"r{i}", "a", "t", A, LAN_A)
    assert len(rv.rooms) == 3 and rv.stats.dropped["rooms-full"] == 2


def test_the_replay_cache_is_bounded_and_fails_closed():
    rv = broker(Limits(replay_entries=2))
    answers = [reg(rv, f"r{i}", "a", "t", A, LAN_A)[0][0] for i in range(3)]
    assert [type(a).__name__ for a in answers] == ["Waiting", "Waiting", "Error"]
    assert answers[2].code == "busy" and len(rv.replays) == 2


def test_members_registering_again_while_they_wait_never_fill_the_replay_cache():
    """Only joins enter the broker-wide cache: 200 waiting members re-sending for a minute (what a
    248-pair lab does while its peers start) leave one entry each, and the last pair still gets in."""
    clock = Clock()
    rv = broker(Limits(replay_entries=250), clock)
    for tick in range(120):
        clock.now = tick * 0.5
        for i in range(200):
            [(reply, _)] = reg(rv, f"r{i}", "a", "t", A, LAN_A)
            assert isinstance(reply, Waiting), reply
    assert len(rv.replays) == 200
    assert isinstance(reg(rv, "r0", "b", "t", B, LAN_B)[0][0], Intro)


def test_a_members_own_registers_are_good_once_and_never_older_than_its_latest():
    clock = Clock()
    rv = broker(clock=clock)
    first = encode(register("r", "a", "t", LAN_A, ts=rv.wall()))
    second = encode(register("r", "a", "t", LAN_A, ts=rv.wall()))  # the same second, another nonce
    assert len(send(rv, first, A)) == 1 and len(send(rv, second, A)) == 1
    clock.now = 2
    later = encode(register("r", "a", "t", LAN_A, ts=rv.wall()))
    assert len(send(rv, later, A)) == 1
    for replayed in (first, second, later):
        assert send(rv, replayed, C) == []
    assert rv.rooms["r"].members["a"].endpoint == A and rv.stats.dropped["replay"] == 3
    assert len(rv.replays) == 1  # the join alone


def test_an_old_transactions_register_cannot_take_the_member_back():
    """A peer that started again (new txn) is not undone by a replay of a register of its old life,
    even one the broker-wide cache never held (a re-send, not the join)."""
    clock = Clock()
    rv = broker(clock=clock)
    reg(rv, "r", "a", "old", A, LAN_A)
    clock.now = 1
    resent = encode(register("r", "a", "old", LAN_A, ts=rv.wall()))
    send(rv, resent, A)
    clock.now = 3
    reg(rv, "r", "a", "new", C, LAN_A)
    assert send(rv, resent, A) == []
    assert rv.rooms["r"].members["a"].txn == "new" and rv.rooms["r"].members["a"].endpoint == C


def test_a_forgotten_members_register_cannot_make_it_a_member_again():
    """With a member silence shorter than twice the clock skew, a member's last re-send is still
    fresh after it is forgotten: the broker keeps its newest timestamp until no register could be."""
    clock = Clock()
    rv = broker(Limits(member_ttl_s=5, clock_skew_s=30), clock)
    reg(rv, "r", "a", "t", A, LAN_A)
    clock.now = 1
    resent = encode(register("r", "a", "t", LAN_A, ts=rv.wall()))
    send(rv, resent, A)
    clock.now = 10
    rv.expire()
    assert "r" not in rv.rooms and len(rv.floors) == 1
    assert send(rv, resent, C) == [] and "r" not in rv.rooms
    assert isinstance(reg(rv, "r", "a", "t", A, LAN_A)[0][0], Waiting)  # a fresh register still joins
    for clock.now in (100, 200):  # forgotten again at 100; its window kept until no register is fresh
        rv.expire()
    assert not rv.floors


# -- amplification -------------------------------------------------------------------------------
def test_answers_to_unauthenticated_datagrams_are_never_larger_than_them():
    rv = broker()
    junk = [b"", b"\xff" * 100, b"{", b'{"natlab":2,"type":"intro"}', b"{" + b"x" * 500, b"\x00\x01" + b"\x00" * 18,
            encode(unsigned(register("r", "a", "t", LAN_A, ts=rv.wall()))), encode(Ping("x" * 64, 2**53)),
            b'{"natlab":2,"type":"' + "é".encode() * 100 + b'"}']
    for data in junk:
        for reply, _ in rv.handle(data, C):
            assert len(reply) <= len(data), data
    assert rv.stats.received == len(junk)


def test_short_junk_gets_no_answer_and_longer_junk_a_shortened_error():
    rv = broker()
    assert rv.handle(b"{", C) == [] and rv.handle(b"\xff" * 40, C) == []
    [(reply, _)] = rv.handle(b"{" + b"x" * 80, C)
    assert len(reply) <= 81 and decode(reply).code == "bad-request"
    assert rv.stats.dropped["malformed"] == 3


def test_bounded_error_fits_or_is_nothing():
    for limit in (0, 10, 45, 60, 70, 200):
        out = bounded_error("bad-request", "é" * 200, limit)
        assert out is None or len(out) <= limit
    assert bounded_error("bad-request", "x", 10) is None


def test_ping_is_answered_and_peer_traffic_is_not():
    rv = broker()
    assert send(rv, encode(Ping("x", 3)), A) == [(Pong("x", 3), A)]
    assert send(rv, encode(Probe("r", "a", 0, False)), A) == []
    assert send(rv, encode(Data("r", "a", 0, "hi")), A) == []
    assert send(rv, encode(Error("e", "r")), A) == []
    assert rv.stats.dropped["peer-traffic"] == 2 and rv.stats.dropped["error-message"] == 1


def test_register_carries_the_private_endpoint_it_declares():
    msg = register("r", "a", "t", LAN_A)
    assert isinstance(msg, Register) and msg.private == LAN_A


def test_each_member_learns_its_partners_relayed_candidate_in_the_introduction():
    rv = broker()
    relay_a, relay_b = Endpoint("198.51.100.20", 50001), Endpoint("198.51.100.20", 50002)
    reg(rv, "r", "a", "t1", A, LAN_A, relay=relay_a)
    got = {dest: msg for msg, dest in reg(rv, "r", "b", "t2", B, LAN_B, relay=relay_b)}
    assert got[A].partner_relay == relay_b and got[B].partner_relay == relay_a
    assert all(verify(m, keys("r").from_broker) for m in got.values())


def test_each_member_learns_the_ports_its_partner_predicted_and_only_its_partner():
    rv = broker()
    reg(rv, "r", "a", "t1", A, LAN_A, predicted=(A.port + 2, 16))
    got = {dest: msg for msg, dest in reg(rv, "r", "b", "t2", B, LAN_B)}
    assert (got[B].partner_predicted_port, got[B].partner_predicted_count) == (A.port + 2, 16)
    assert got[B].partner_predicted[0] == Endpoint(A.ip, A.port + 2)
    assert got[A].partner_predicted == []  # b predicted nothing
    assert all(verify(m, keys("r").from_broker) for m in got.values())

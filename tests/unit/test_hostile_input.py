"""Property-based tests of every parser the broker exposes, on arbitrary, truncated and mutated input.

No exception escapes any of them, answers stay within their bounds, and the broker's state stays
consistent and bounded whatever arrives: wire.protocol.decode, wire.stun.decode, the rendezvous logic,
the STUN service and the broker's datagram dispatch.
"""

from __future__ import annotations

import json
from collections import OrderedDict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.broker import Broker
from server.limits import Limits
from server.rendezvous import Rendezvous
from server.stun_service import Addresses, StunStats, answer
from tests.helpers.signed import BROKER_KEY, keys
from wire import stun
from wire.auth import RoomKeys, sign
from wire.protocol import (
    MAX_DATAGRAM,
    MAX_PREDICTED,
    MESSAGE_TYPES,
    Ack,
    Bye,
    Data,
    Endpoint,
    Error,
    Intro,
    Message,
    Ping,
    Pong,
    Probe,
    ProtocolError,
    Register,
    Waiting,
    decode,
    encode,
)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WALL = 1_700_000_000.0
ADDRS = Addresses(("198.51.100.10", "198.51.100.11"), (3478, 3479))

# -- strategies ---------------------------------------------------------------------------------
names = st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True)
hexes = st.from_regex(r"[0-9a-f]{0,64}", fullmatch=True)
ints = st.integers(0, 2**53)
texts = st.text(max_size=80)
endpoints = st.builds(Endpoint, st.ip_addresses(v=4).map(str), st.integers(1, 65535))
KINDS = {"Name": names, "Hex": hexes, "int": ints, "bool": st.booleans(), "str": texts, "Endpoint": endpoints,
         "Endpoint | None": st.none() | endpoints}


# A port prediction is none, or a port and a count a partner can spray (wire.protocol.MAX_PREDICTED).
predictions = st.just((0, 0)) | st.tuples(st.integers(1, 65535), st.integers(1, MAX_PREDICTED))
PREDICTION_FIELDS = {"register": ("predicted_port", "predicted_count"),
                     "intro": ("partner_predicted_port", "partner_predicted_count")}


def message_of(cls: type[Message]) -> st.SearchStrategy[Message]:
    import dataclasses

    guessed = PREDICTION_FIELDS.get(cls.TYPE, ())
    built = st.builds(cls, **{f.name: KINDS[str(f.type)] for f in dataclasses.fields(cls) if f.name not in guessed})
    if not guessed:
        return built
    return st.tuples(built, predictions).map(lambda mg: dataclasses.replace(mg[0], **dict(zip(guessed, mg[1]))))


messages = st.one_of([message_of(cls) for cls in MESSAGE_TYPES.values()])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
lab_like = st.builds(
    lambda kind, extra: json.dumps({"natlab": 2, "type": kind, **extra}).encode(),
    st.sampled_from([*MESSAGE_TYPES, "nope"]),
    st.dictionaries(st.sampled_from(["room", "peer", "txn", "private", "ts", "nonce", "mac", "seq", "ack", "text",
                                     "you", "tag", "code", "partner", "session"]), json_values, max_size=9),
)


@st.composite
def mutated(draw, source: st.SearchStrategy[bytes]) -> bytes:
    """A valid datagram, then bit flips, a cut, and inserted bytes, each maybe."""
    data = bytearray(draw(source))
    for _ in range(draw(st.integers(0, 4))):
        if data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
    if draw(st.booleans()):
        del data[draw(st.integers(0, len(data))):]
    if draw(st.booleans()):
        i = draw(st.integers(0, len(data)))
        data[i:i] = draw(st.binary(max_size=16))
    return bytes(data)


encoded = messages.map(encode)
def binding(change: int, port: int | None, fingerprint: bool) -> bytes:
    attrs = OrderedDict([("CHANGE-REQUEST", change), *([("RESPONSE-PORT", port)] if port else [])])
    return stun.encode(stun.Message(stun.Method.BINDING, stun.Class.REQUEST, attributes=attrs), fingerprint=fingerprint)


stun_requests = st.builds(
    binding,
    st.sampled_from([0, 2, 4, 6]), st.one_of(st.none(), st.integers(1, 65535)), st.booleans(),
)
hostile = st.one_of(st.binary(max_size=MAX_DATAGRAM + 100), lab_like, mutated(encoded), mutated(stun_requests),
                     mutated(lab_like))


# -- the codecs ---------------------------------------------------------------------------------
@SETTINGS
@given(messages)
def test_every_valid_message_round_trips(msg):
    assert decode(encode(msg)) == msg


@SETTINGS
@given(hostile)
def test_proto_decode_raises_only_protocol_errors(data):
    try:
        msg = decode(data)
    except ProtocolError:
        return
    assert isinstance(msg, Message) and decode(encode(msg)) == msg  # whatever decodes is a clean message


@SETTINGS
@given(st.one_of(st.binary(max_size=600), mutated(stun_requests)))
def test_stun_decode_raises_only_stun_errors(data):
    try:
        msg = stun.decode(data)
    except stun.StunError:
        return
    assert msg.message_method is not None


# -- the STUN service ---------------------------------------------------------------------------
@SETTINGS
@given(st.one_of(st.binary(min_size=20, max_size=600).map(lambda b: bytes([b[0] & 3]) + b[1:]),
                 mutated(stun_requests), stun_requests))
def test_the_stun_service_answers_a_stun_message_or_nothing(data):
    stats = StunStats()
    got = answer(data, Endpoint("198.51.100.101", 40000), Endpoint("198.51.100.10", 3478), ADDRS, stats)
    if got is None:
        return
    reply, send_from, send_to = got
    assert send_from in ADDRS.sockets() and send_to.ip == "198.51.100.101"
    assert stun.decode(reply).transaction_id == stun.decode(data).transaction_id
    assert len(reply) <= 200  # whatever the request: the amplification of STUN has a ceiling


# -- the rendezvous logic -----------------------------------------------------------------------
SOURCES = [Endpoint("198.51.100.101", 4000), Endpoint("198.51.100.102", 5000), Endpoint("198.51.100.66", 6000)]
ROOMS, PEERS = ["r0", "r1", "r2", "r3", "r4"], ["a", "b", "c"]
LIMITS = Limits(max_rooms=3, replay_entries=8, member_ttl_s=20, room_lifetime_s=60, clock_skew_s=30)


@st.composite
def events(draw):
    """One thing that happens to the broker: time passes, a genuine register, a forged one, junk."""
    kind = draw(st.sampled_from(["tick", "genuine", "genuine", "forged", "junk", "junk"]))
    source = draw(st.sampled_from(SOURCES))
    if kind == "tick":
        return ("tick", draw(st.floats(0, 40)), None)
    if kind == "junk":
        return ("junk", draw(hostile), source)
    room, peer = draw(st.sampled_from(ROOMS)), draw(st.sampled_from(PEERS))
    reg = Register(room, peer, draw(st.sampled_from(["t1", "t2"])), draw(endpoints),
                   int(WALL) + draw(st.integers(-40, 40)), draw(st.from_regex(r"[0-9a-f]{16}", fullmatch=True)))
    key = keys(room).to_broker if kind == "genuine" else RoomKeys.from_secret(bytes(32)).to_broker
    data = encode(sign(reg, key))
    if kind == "forged" and draw(st.booleans()):
        data = draw(mutated(st.just(data)))
    return (kind, data, source)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(events(), max_size=60))
def test_the_rendezvous_state_stays_consistent_and_bounded(story):
    now = [0.0]
    rv = Rendezvous(BROKER_KEY, LIMITS, clock=lambda: now[0], wall=lambda: WALL + now[0])
    admitted: set[tuple[str, str]] = set()
    for kind, data, source in story:
        if kind == "tick":
            now[0] += data
            continue
        replies = rv.handle(data, source)
        for reply, dest in replies:
            msg = decode(reply)  # every answer is a valid message
            if isinstance(msg, (Error, Pong)):
                assert len(reply) <= len(data) and dest == source  # no amplification, no redirection
            else:
                assert isinstance(msg, (Waiting, Intro)) and kind == "genuine"
        if kind == "genuine" and any(isinstance(decode(r), (Waiting, Intro)) for r, _ in replies):
            reg = decode(data)
            admitted.add((reg.room, reg.peer))
        assert len(rv.rooms) <= LIMITS.max_rooms and len(rv.replays) <= LIMITS.replay_entries
        assert len(rv.floors) <= LIMITS.max_rooms * LIMITS.room_size + LIMITS.replay_entries
        assert not {key for key in rv.floors if key[0] in rv.rooms and key[1] in rv.rooms[key[0]].members}
        for room in rv.rooms.values():
            assert len(room.members) <= LIMITS.room_size
            assert {(room.name, p) for p in room.members} <= admitted  # only the secret gets one in
            assert len(room.members) < 2 or room.session is not None
    assert rv.stats.received == sum(1 for kind, _, _ in story if kind != "tick")


@SETTINGS
@given(hostile)
def test_rendezvous_handle_never_raises_and_answers_junk_within_its_size(data):
    rv = Rendezvous(BROKER_KEY, LIMITS, wall=lambda: WALL)
    replies = rv.handle(data, SOURCES[2])
    for reply, _ in replies:
        assert len(reply) <= len(data)
    assert rv.rooms == {}  # junk makes no room
    pong = [r for r, _ in replies if isinstance(decode(r), Pong)]
    assert sum(rv.stats.dropped.values()) + len(pong) == 1  # served (a ping) or counted as dropped, once


# -- the broker's dispatch ----------------------------------------------------------------------
class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((data, addr))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(hostile, st.sampled_from(SOURCES), st.sampled_from(ADDRS.sockets()), st.floats(0, 0.5)),
                max_size=80))
def test_the_dispatcher_survives_anything_and_keeps_its_tables_bounded(datagrams):
    limits = Limits(sources=2, rendezvous_burst=5, rendezvous_rate=5, stun_burst=5, stun_rate=5)
    broker = Broker(ADDRS, BROKER_KEY, limits)
    recorders = {ep: Recorder() for ep in ADDRS.sockets()}
    broker.transports.update(recorders)  # type: ignore[arg-type]
    now = 0.0
    for data, source, local, dt in datagrams:
        now += dt
        broker.received(data, source, local, now=now)
    stats = broker.stats()
    assert stats["datagrams"] == len(datagrams)
    assert len(broker.stun_limiter.buckets) <= 2 and len(broker.rendezvous_limiter.buckets) <= 2
    for recorder in recorders.values():
        for reply, (ip, _) in recorder.sent:
            assert ip in {s.ip for s in SOURCES}  # answers go back to senders only
            assert len(reply) <= MAX_DATAGRAM
    sessions = [m for r in recorders.values() for d, _ in r.sent if d[:1] == b"{"
                for m in [decode(d)] if isinstance(m, (Probe, Data, Ack, Bye, Ping))]
    assert sessions == []  # the broker never speaks the peers' session, nor pings

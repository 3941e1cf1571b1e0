"""The broker's dispatcher (server.broker.Broker.received): bounds, rate limits, demultiplexing.

The transports are recorders: what is tested is which datagram goes to which service and what
is sent back, not the sockets (tests/test_broker_loopback.py runs the real process).
"""

from __future__ import annotations

from collections import OrderedDict

from server.broker import Broker
from server.limits import Limits
from server.stun_service import Addresses
from tests.helpers.signed import BROKER_KEY, register
from wire import stun
from wire.protocol import MAX_DATAGRAM, Endpoint, Ping, Pong, decode, encode

ADDRS = Addresses(("198.51.100.10", "198.51.100.11"), (3478, 3479))
PRIMARY, ALT = Endpoint("198.51.100.10", 3478), Endpoint("198.51.100.11", 3479)
PEER, OUTSIDER = Endpoint("198.51.100.101", 40000), Endpoint("198.51.100.66", 50000)


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((data, addr))


def broker(limits: Limits = Limits()) -> tuple[Broker, dict[Endpoint, Recorder]]:
    b = Broker(ADDRS, BROKER_KEY, limits)
    recorders = {ep: Recorder() for ep in ADDRS.sockets()}
    b.transports.update(recorders)  # type: ignore[arg-type]
    return b, recorders


def binding() -> bytes:
    request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST, attributes=OrderedDict())
    return stun.encode(request, fingerprint=False)


def test_stun_is_answered_on_every_socket_and_rendezvous_only_on_the_primary():
    b, rec = broker()
    b.received(binding(), PEER, ALT, now=0.0)
    assert len(rec[ALT].sent) == 1 and stun.decode(rec[ALT].sent[0][0]).message_class == stun.Class.RESPONSE
    b.received(encode(Ping("t", 1)), PEER, ALT, now=0.0)
    b.received(encode(Ping("t", 1)), PEER, PRIMARY, now=0.0)
    assert [decode(d) for d, _ in rec[PRIMARY].sent] == [Pong("t", 1)]
    assert b.stats()["dropped"] == {"not-the-rendezvous-socket": 1}


def test_oversize_datagrams_are_dropped_before_any_parser():
    b, rec = broker()
    for data in (b"{" + b" " * MAX_DATAGRAM, b"\x00\x01" + b"\x00" * MAX_DATAGRAM):
        b.received(data, OUTSIDER, PRIMARY, now=0.0)
    assert not any(r.sent for r in rec.values())
    assert b.stats()["dropped"] == {"oversize": 2} and b.rendezvous.stats.received == 0


def test_a_flooding_source_is_limited_and_its_neighbours_are_not():
    b, rec = broker(Limits(rendezvous_rate=10, rendezvous_burst=20))
    for i in range(1000):
        b.received(b"junk", OUTSIDER, PRIMARY, now=i / 10_000)  # 1000 datagrams in 0.1 s
    assert b.stats()["dropped"]["rate-limited"] >= 1000 - 20 - 1
    b.received(encode(register("r", "a", "t", Endpoint("10.0.1.10", 40000))), PEER, PRIMARY, now=0.1)
    assert decode(rec[PRIMARY].sent[-1][0]).TYPE == "waiting"


def test_stun_has_its_own_bucket():
    b, rec = broker(Limits(stun_rate=1, stun_burst=3))
    for _ in range(10):
        b.received(binding(), OUTSIDER, PRIMARY, now=0.0)
    assert len(rec[PRIMARY].sent) == 3 and b.stats()["dropped"]["stun-rate-limited"] == 7


def test_stats_add_up():
    b, _ = broker()
    for data in (b"{", b"\x00\x01\x00\x08" + b"\x00" * 16, binding(), encode(Ping("t", 1))):  # 2nd: bad length
        b.received(data, PEER, PRIMARY, now=0.0)
    stats = b.stats()
    assert stats["datagrams"] == 4 and stats["stun"]["answered"] == 1 and stats["dropped"]["malformed"] == 1
    assert stats["dropped"]["stun-unanswerable"] == 1

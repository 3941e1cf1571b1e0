"""The attacker tool against the real broker on 127.0.0.1: refused without the secret, replays get
nothing; its spoofed packets carry the source it claims (raw socket, loopback only, root)."""

from __future__ import annotations

import os
import socket

import pytest

from peers.attacker import join, replay, spoof, udp_packet
from tests.helpers.loopback import LoopbackBroker
from tests.helpers.signed import register
from wire.auth import RoomKeys
from wire.protocol import Endpoint, Probe, encode, try_decode


@pytest.fixture
def broker(tmp_path):
    b = LoopbackBroker(tmp_path / "broker")
    yield b
    b.stop()


def test_joining_without_the_secret_is_refused(broker):
    out = join(broker.endpoint, "r", ["a", "b", "c"], count=2)
    assert out["sent"] == 12 and out["admitted"] == 0 and out["answers"] == {"error:unauthorized": 12}
    assert broker.status()["stats"]["rooms"] == 0


def test_a_replayed_register_gets_nothing(broker):
    room_keys = RoomKeys.from_secret(bytes.fromhex(broker.secret("r")))  # the loopback broker's own key
    genuine = encode(register("r", "a", "t", Endpoint("10.0.1.10", 4000), secret_keys=room_keys))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.settimeout(2)
        peer.sendto(genuine, broker.endpoint.to_tuple())
        assert try_decode(peer.recv(2048)).TYPE == "waiting"
    out = replay(broker.endpoint, genuine, count=3)
    assert out["admitted"] == 0 and out["answers"] == {}
    assert broker.status()["stats"]["dropped"]["replay"] == 3


@pytest.mark.skipif(os.geteuid() != 0, reason="raw sockets need root")
def test_spoofed_packets_carry_the_claimed_source():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as victim, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as partner:
        victim.bind(("127.0.0.1", 0))
        partner.bind(("127.0.0.1", 0))
        victim.settimeout(2)
        to, claimed = Endpoint(*victim.getsockname()), Endpoint(*partner.getsockname())
        with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as raw:
            raw.sendto(udp_packet(claimed, to, b"hello"), (to.ip, 0))
        assert victim.recvfrom(2048) == (b"hello", claimed.to_tuple())
        out = spoof([(to, claimed, "b")], "r", seconds=0.2, rate=50)
        assert out["sent"] >= 2
        data, source = victim.recvfrom(2048)
        msg = try_decode(data)
        assert source == claimed.to_tuple() and isinstance(msg, Probe) and msg.sender == "b"

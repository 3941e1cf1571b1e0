"""The wire codec: every message round-trips; everything else is a ProtocolError, never a crash."""

from __future__ import annotations

import json

import pytest

from lab.proto import (
    MAX_DATAGRAM,
    Data,
    Endpoint,
    Error,
    Intro,
    Ping,
    Pong,
    Probe,
    ProtocolError,
    Register,
    Waiting,
    decode,
    encode,
)

EP = Endpoint("198.51.100.101", 40000)
SAMPLES = [
    Register("room", "a", "0011aabb"),
    Waiting("room", "0011aabb", EP),
    Intro("room", "t", EP, "b", Endpoint("198.51.100.102", 5)),
    Error("bad-request", "why"),
    Ping("control-no-bypass-a", 0),
    Pong("control-no-bypass-a", 2),
    Probe("room", "a", 7, True),
    Data("room", "b", 3, "hello #3 from b"),
]


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: m.TYPE)
def test_round_trip(msg):
    data = encode(msg)
    assert data.startswith(b"{")  # outside RFC 7983's STUN/DTLS/RTP ranges
    assert decode(data) == msg


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "first byte"),
        (b"\x00\x01\x00\x00", "first byte"),  # a STUN header
        (b"{not json", "not JSON"),
        (b"[1]", "first byte"),
        (b'{"natlab":2,"type":"ping","tag":"x","seq":1}', "version"),
        (b'{"natlab":1,"type":"nope"}', "unknown message type"),
        (b'{"natlab":1,"type":"ping","tag":"x"}', "missing field"),
        (b'{"natlab":1,"type":"ping","tag":"x","seq":"1"}', "must be int"),
        (b'{"natlab":1,"type":"ping","tag":"x","seq":true}', "must be int"),
        (b'{"natlab":1,"type":"probe","room":"r","sender":"a","seq":1,"ack":1}', "must be bool"),
        (b'{"natlab":1,"type":"ping","tag":"x","seq":1,"extra":0}', "unexpected fields"),
        (b'{"natlab":1,"type":"waiting","room":"r","txn":"t","you":"1.2.3.4"}', "bad endpoint"),
        (b'{"natlab":1,"type":"waiting","room":"r","txn":"t","you":"1.2.3.4:0"}', "bad port"),
        (b'{"natlab":1,"type":"waiting","room":"r","txn":"t","you":"999.2.3.4:80"}', "bad IPv4"),
        (b"{" + b" " * MAX_DATAGRAM + b"}", "exceeds"),
        (b"{\"x\":" + b"[" * 1190, "not JSON"),  # deep nesting within the size limit
    ],
)
def test_invalid_datagrams_are_protocol_errors(data, reason):
    with pytest.raises(ProtocolError, match=reason):
        decode(data)


def test_long_strings_are_refused():
    body = {"natlab": 1, "type": "ping", "tag": "x" * 300, "seq": 1}
    with pytest.raises(ProtocolError, match="longer than"):
        decode(json.dumps(body).encode())


def test_endpoint_parse_and_format():
    assert Endpoint.parse("10.0.1.10:40000") == Endpoint("10.0.1.10", 40000)
    assert str(Endpoint("10.0.1.10", 40000)) == "10.0.1.10:40000"
    with pytest.raises(ProtocolError):
        Endpoint.parse("10.0.1.10")

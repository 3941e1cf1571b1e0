"""The wire codec: every message round-trips; everything else is a ProtocolError, never a crash."""

from __future__ import annotations

import json

import pytest

from wire.protocol import (
    MAX_DATAGRAM,
    Ack,
    Bye,
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
    text_without_private,
)

EP = Endpoint("198.51.100.101", 40000)
LAN = Endpoint("10.0.1.10", 40000)
MAC = "ab" * 16
SAMPLES = [
    Register("room", "a", "0011aabb", LAN, 1_700_000_000, "00" * 8, MAC),
    Waiting("room", "0011aabb", EP, MAC),
    Intro("room", "t", EP, "b", Endpoint("198.51.100.102", 5), Endpoint("10.0.2.10", 5), "5e" * 16, MAC),
    Error("bad-request", "why"),
    Ping("control-no-bypass-a", 0),
    Pong("control-no-bypass-a", 2),
    Probe("room", "a", 7, True, MAC),
    Data("room", "b", 3, "hello #3 from b", MAC),
    Ack("room", "b", 3, MAC),
    Bye("room", "a", 9, MAC),
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
        (b'{"natlab":1,"type":"ping","tag":"x","seq":1}', "version"),  # version 1 is gone
        (b'{"natlab":2.0,"type":"ping","tag":"x","seq":1}', "version"),
        (b'{"natlab":2,"type":"nope"}', "unknown message type"),
        (b'{"natlab":2,"type":["ping"]}', "unknown message type"),  # unhashable: no TypeError
        (b'{"natlab":2,"type":"ping","tag":"x"}', "missing field"),
        (b'{"natlab":2,"type":"ping","tag":"x","seq":"1"}', "must be int"),
        (b'{"natlab":2,"type":"ping","tag":"x","seq":true}', "must be int"),
        (b'{"natlab":2,"type":"ping","tag":"x","seq":-1}', "out of range"),
        (b'{"natlab":2,"type":"ping","tag":"x","seq":9007199254740993}', "out of range"),
        (b'{"natlab":2,"type":"ping","tag":"a b","seq":1}', "must be 1-64 of"),
        (b'{"natlab":2,"type":"ping","tag":"x\\ny","seq":1}', "must be 1-64 of"),  # no newlines into logs
        (b'{"natlab":2,"type":"probe","room":"r","sender":"a","seq":1,"ack":true,"mac":"AB"}', "hex"),
        (b'{"natlab":2,"type":"probe","room":"r","sender":"a","seq":1,"ack":1,"mac":""}', "must be bool"),
        (b'{"natlab":2,"type":"ping","tag":"x","seq":1,"extra":0}', "unexpected fields"),
        (b'{"natlab":2,"type":"waiting","room":"r","txn":"t","you":"1.2.3.4","mac":""}', "bad endpoint"),
        (b'{"natlab":2,"type":"waiting","room":"r","txn":"t","you":"1.2.3.4:0","mac":""}', "bad port"),
        (b'{"natlab":2,"type":"waiting","room":"r","txn":"t","you":"999.2.3.4:80","mac":""}', "bad IPv4"),
        ('{"natlab":2,"type":"waiting","room":"r","txn":"t","you":"1.2.3.4:١٢","mac":""}'.encode(), "bad endpoint"),
        (b"{" + b" " * MAX_DATAGRAM + b"}", "exceeds"),
        (b"{\"x\":" + b"[" * 1190, "not JSON"),  # deep nesting within the size limit
        (b'{"natlab":2,"type":"data","room":"r","sender":"a","seq":1,"text":"\xff","mac":""}', "not JSON"),
    ],
)
def test_invalid_datagrams_are_protocol_errors(data, reason):
    with pytest.raises(ProtocolError, match=reason):
        decode(data)


def test_long_strings_are_refused():
    body = {"natlab": 2, "type": "data", "room": "r", "sender": "a", "seq": 1, "text": "x" * 300, "mac": ""}
    with pytest.raises(ProtocolError, match="longer than"):
        decode(json.dumps(body).encode())


def test_endpoint_parse_and_format():
    assert Endpoint.parse("10.0.1.10:40000") == Endpoint("10.0.1.10", 40000)
    assert str(Endpoint("10.0.1.10", 40000)) == "10.0.1.10:40000"
    with pytest.raises(ProtocolError):
        Endpoint.parse("10.0.1.10")


def test_the_text_without_private_fields_leaves_out_exactly_the_declared_ones():
    register, intro = SAMPLES[0], SAMPLES[2]
    assert b"10.0.1.10" in encode(register) and b"10.0.1.10" not in text_without_private(register)
    assert b"10.0.2.10" not in text_without_private(intro) and b"198.51.100.102" in text_without_private(intro)
    # Anywhere else, a private address stays in the text, unescaped as the receiver reads it.
    sneaky = decode(b'{"natlab":2,"type":"data","room":"r","sender":"a","seq":1,'
                    b'"text":"\\u0031\\u0030.0.1.10","mac":""}')
    assert b"10.0.1.10" in text_without_private(sneaky)
    assert Register.PRIVATE == ("private",) and Intro.PRIVATE == ("partner_private",) and Data.PRIVATE == ()


def test_a_relayed_candidate_rides_in_register_and_intro_and_is_left_out_when_there_is_none():
    relay = Endpoint("198.51.100.20", 50123)
    plain = Register("r", "a", "t1", LAN, 1, "00" * 8, MAC)
    with_relay = Register("r", "a", "t1", LAN, 1, "00" * 8, MAC, relay=relay)
    assert b"relay" not in encode(plain) and decode(encode(plain)) == plain  # the bytes of before the relay
    assert decode(encode(with_relay)).relay == relay
    intro = Intro("r", "t1", EP, "b", EP, LAN, "11" * 16, MAC, partner_relay=relay)
    assert decode(encode(intro)).partner_relay == relay
    with pytest.raises(ProtocolError, match="IP:PORT"):
        decode(encode(plain)[:-1] + b',"relay":null}')


def test_a_relayed_candidate_is_covered_by_the_mac_and_absent_changes_nothing():
    from wire.auth import RoomKeys, canonical, sign, verify

    key = RoomKeys.from_secret(bytes(32)).to_broker
    plain = Register("r", "a", "t1", LAN, 1, "00" * 8)
    assert b"relay" not in canonical(plain)
    signed = sign(Register("r", "a", "t1", LAN, 1, "00" * 8, relay=Endpoint("198.51.100.20", 50000)), key)
    assert verify(signed, key)
    import dataclasses

    assert not verify(dataclasses.replace(signed, relay=Endpoint("198.51.100.20", 50001)), key)


def test_which_send_a_data_is_rides_in_data_and_ack_is_covered_by_the_mac_and_is_left_out_at_one():
    import dataclasses

    from wire.auth import RoomKeys, sign, verify

    first, third = Data("r", "a", 7, "hi"), Data("r", "a", 7, "hi", send=3)
    assert b"\"send\"" not in encode(first) and decode(encode(first)) == first  # the bytes of before the field
    assert decode(encode(third)).send == 3 and decode(encode(Ack("r", "b", 7, send=3))).send == 3
    key = RoomKeys.from_secret(bytes(32)).session("00" * 16)
    assert not verify(dataclasses.replace(sign(third, key), send=4), key)
    with pytest.raises(ProtocolError, match="send must be int"):
        decode(encode(first)[:-1] + b',"send":"2"}')

"""The broker's STUN answers (RFC 8489 / 5780 / 3489), without sockets."""

from __future__ import annotations

import struct
from collections import OrderedDict

import pytest

from server.stun_service import Addresses, StunStats, answer
from wire import stun
from wire.protocol import Endpoint

ADDRS = Addresses(("198.51.100.10", "198.51.100.11"), (3478, 3479))
PRIMARY = Endpoint("198.51.100.10", 3478)
CLIENT = Endpoint("198.51.100.101", 40000)


def request(**attrs) -> bytes:
    msg = stun.Message(stun.Method.BINDING, stun.Class.REQUEST, attributes=OrderedDict(attrs))
    return stun.encode(msg, fingerprint=False)


def ask(data: bytes, local: Endpoint = PRIMARY):
    stats = StunStats()
    got = answer(data, CLIENT, local, ADDRS, stats)
    return got, stats


def test_binding_answer_carries_the_observed_endpoint_and_the_other_address():
    data = request()
    (reply, send_from, send_to), stats = ask(data)
    msg = stun.decode(reply)
    assert msg.message_class == stun.Class.RESPONSE
    assert msg.transaction_id == stun.decode(data).transaction_id
    assert msg.attributes["XOR-MAPPED-ADDRESS"] == ("198.51.100.101", 40000)
    assert msg.attributes["MAPPED-ADDRESS"] == ("198.51.100.101", 40000)
    assert msg.attributes["RESPONSE-ORIGIN"] == ("198.51.100.10", 3478)
    assert msg.attributes["OTHER-ADDRESS"] == ("198.51.100.11", 3479)
    assert "FINGERPRINT" in msg.attributes  # decode() verified it
    assert (send_from, send_to) == (PRIMARY, CLIENT) and stats.answered == 1


@pytest.mark.parametrize(
    "change, origin",
    [
        (stun.CHANGE_IP | stun.CHANGE_PORT, Endpoint("198.51.100.11", 3479)),
        (stun.CHANGE_PORT, Endpoint("198.51.100.10", 3479)),
        (stun.CHANGE_IP, Endpoint("198.51.100.11", 3478)),
        (0, PRIMARY),
    ],
)
def test_change_request_moves_the_origin(change, origin):
    (reply, send_from, _), _ = ask(request(**{"CHANGE-REQUEST": change}))
    assert send_from == origin
    assert stun.decode(reply).attributes["RESPONSE-ORIGIN"] == origin.to_tuple()


def test_other_address_names_the_alternate_ip_from_either_ip():
    for local, other in [
        (PRIMARY, ("198.51.100.11", 3479)),
        (Endpoint("198.51.100.11", 3478), ("198.51.100.11", 3479)),  # what natdiscovery's test III needs
        (Endpoint("198.51.100.10", 3479), ("198.51.100.11", 3478)),
    ]:
        (reply, _, _), _ = ask(request(), local)
        assert stun.decode(reply).attributes["OTHER-ADDRESS"] == other


def test_response_port_redirects_to_another_port_of_the_same_address():
    (_, _, send_to), _ = ask(request(**{"RESPONSE-PORT": 50000}))
    assert send_to == Endpoint(CLIENT.ip, 50000)


def test_rfc3489_clients_get_their_16_byte_transaction_id_and_classic_attributes():
    classic_id = bytes(range(16))
    data = struct.pack("!HH", 0x0001, 0) + classic_id
    (reply, _, _), _ = ask(data, Endpoint("198.51.100.11", 3479))
    assert reply[4:20] == classic_id
    attrs = stun.decode(reply).attributes
    assert attrs["MAPPED-ADDRESS"] == CLIENT.to_tuple()
    assert attrs["CHANGED-ADDRESS"] == ("198.51.100.11", 3478)
    assert "XOR-MAPPED-ADDRESS" not in attrs and "FINGERPRINT" not in attrs


def test_unknown_comprehension_required_attribute_is_a_420_listing_it():
    data = bytearray(request())
    data += struct.pack("!HH", 0x0077, 4) + b"abcd"
    data[2:4] = struct.pack("!H", len(data) - 20)
    (reply, _, _), stats = ask(bytes(data))
    msg = stun.decode(reply)
    assert msg.message_class == stun.Class.ERROR
    assert msg.attributes["ERROR-CODE"][0] == 420
    assert msg.attributes["UNKNOWN-ATTRIBUTES"] == [0x0077]
    assert stats.errors == 1


def test_other_methods_get_400_and_indications_nothing():
    allocate = stun.encode(stun.Message(stun.Method.ALLOCATE, stun.Class.REQUEST), fingerprint=False)
    (reply, _, _), _ = ask(allocate)
    assert stun.decode(reply).attributes["ERROR-CODE"][0] == 400
    indication = stun.encode(stun.Message(stun.Method.BINDING, stun.Class.INDICATION), fingerprint=False)
    assert ask(indication)[0] is None


@pytest.mark.parametrize(
    "junk",
    [
        b"\x00\x01\x00\x04" + b"\x21\x12\xa4\x42" + b"x" * 12,  # says 4 bytes of body, has none
        b"\x00\x01\x00\x08" + b"\x21\x12\xa4\x42" + b"x" * 12 + b"\x00\x01\x00\x10abcd",  # attribute overruns
        b"\x00\x01\x00\x03" + b"\x21\x12\xa4\x42" + b"x" * 12 + b"abc",  # length not a multiple of 4
        b"\x00\x01\x00\x08" + b"\x21\x12\xa4\x42" + b"x" * 12 + b"\x00\x01\x00\x04\x00\x09\x00\x00",  # bad family
    ],
)
def test_malformed_stun_is_dropped_without_an_exception(junk):
    got, stats = ask(junk)
    assert got is None and stats.ignored == 1


def test_demultiplexing_follows_rfc7983():
    assert stun.is_stun(request())
    assert not stun.is_stun(b'{"natlab":1}' + b" " * 20)
    assert not stun.is_stun(b"\x00\x01")

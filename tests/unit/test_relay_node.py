"""The relay node's parts that need no lab: TURN REST credentials, turnserver's configuration, the
addresses it may relay to, TURN framing in the captures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from ipaddress import IPv4Address

from lab.analysis.packets import decode_payload
from lab.topology import build_topology
from node.settings import encode_ranges, settings_from_env
from relay.credentials import mint, secret_text
from relay.turn_server import config_text
from wire import stun
from wire.protocol import Ping, encode


def test_a_credential_is_coturns_turn_rest_form_and_expires():
    key = bytes(range(32))
    cred = mint(key, "a", 60, now=1_000_000)
    assert cred["username"] == "1000060:a" and cred["expires"] == 1_000_060
    digest = hmac.new(key.hex().encode(), b"1000060:a", hashlib.sha1).digest()
    assert cred["password"] == base64.b64encode(digest).decode()
    assert mint(key, "a", 60, now=1_000_001)["password"] != cred["password"]  # a new expiry, a new password


def test_the_relay_may_relay_to_every_public_address_but_the_brokers_the_outsiders_and_the_wan_hosts():
    topo = build_topology(pairs=2)
    ranges = topo.relay_peer_ranges()
    allowed = {IPv4Address(int(low) + i) for low, high in ranges for i in range(int(high) - int(low) + 1)}
    for node in (topo.broker, topo.outsider, topo.wan_host):
        assert not {i.address for i in node.interfaces} & allowed, node.name
    assert IPv4Address("198.51.100.11") not in allowed  # the broker's second address
    assert {p.public_ip for p in topo.pairs} <= allowed and topo.relay.address in allowed
    assert {i.network for i in topo.relay.interfaces} == {"wan", "wan2"}


def test_turnserver_is_configured_for_credentials_only_and_the_lab_peers_only():
    topo = build_topology()
    env = {"NATLAB_NODE": "relay", "NATLAB_ADDRESSES": "wan=198.51.100.20",
           "NATLAB_RELAY_PEERS": encode_ranges(topo.relay_peer_ranges())}
    conf = config_text(settings_from_env(env), "s3cret", 3478).splitlines()
    assert {"use-auth-secret", "static-auth-secret=s3cret", "listening-ip=198.51.100.20", "relay-ip=198.51.100.20",
            "listening-port=3478", "no-multicast-peers", "denied-peer-ip=0.0.0.0-255.255.255.255"} <= set(conf)
    allowed = [line for line in conf if line.startswith("allowed-peer-ip=")]
    assert "allowed-peer-ip=198.51.100.67-198.51.100.254" in allowed and len(allowed) == 4  # around .10-.11 (broker), .30 (WAN host), .66 (outsider)
    assert secret_text(bytes(32)) == "00" * 32


def test_a_lab_message_inside_a_turn_channel_or_a_send_indication_is_decoded_as_relayed():
    inner = encode(Ping("t", 1))
    framed = struct.pack("!HH", 0x4001, len(inner)) + inner
    assert decode_payload(framed) == (Ping("t", 1), True)
    indication = stun.Message(message_method=stun.Method.SEND, message_class=stun.Class.INDICATION)
    indication.attributes["DATA"] = inner
    assert decode_payload(bytes(indication)) == (Ping("t", 1), True)
    assert decode_payload(inner) == (Ping("t", 1), False)
    assert decode_payload(struct.pack("!HH", 0x4001, 99) + inner) == (None, False)  # length beyond the datagram
    request = stun.Message(message_method=stun.Method.ALLOCATE, message_class=stun.Class.REQUEST)
    assert stun.method_and_class(bytes(request)) == (0x003, 0x000) and decode_payload(bytes(request)) == (None, False)

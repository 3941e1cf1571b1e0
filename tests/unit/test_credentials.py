"""Room secrets, MACs and freshness (wire.auth), and the broker key on disk."""

from __future__ import annotations

import dataclasses
import json
import stat

import pytest

from node.key_file import load_or_create_key
from server.broker_key import main as credentials_main
from tests.helpers.signed import BROKER_KEY, keys
from wire.auth import (
    CredentialError,
    RoomKeys,
    canonical,
    fresh,
    parse_secret,
    room_secret,
    sign,
    verify,
)
from wire.protocol import Data, Endpoint, Probe, Register, decode, encode

LAN = Endpoint("10.0.1.10", 40000)


def test_room_secrets_differ_per_room_and_per_broker_key():
    assert room_secret(BROKER_KEY, "r1") != room_secret(BROKER_KEY, "r2")
    assert room_secret(BROKER_KEY, "r1") != room_secret(bytes(32), "r1")
    assert room_secret(BROKER_KEY, "r1") == room_secret(BROKER_KEY, "r1")
    assert len(room_secret(BROKER_KEY, "r1")) == 64


def test_a_signed_message_verifies_after_the_wire_and_nowhere_else():
    k = keys("r")
    msg = sign(Register("r", "a", "t", LAN, 1_700_000_000, "00" * 8), k.to_broker)
    assert verify(decode(encode(msg)), k.to_broker)
    assert not verify(msg, k.from_broker)  # one direction's MAC is no good in the other
    assert not verify(msg, keys("other").to_broker)  # nor in another room
    for change in ({"peer": "b"}, {"private": Endpoint("10.0.1.11", 40000)}, {"ts": 1_700_000_001},
                   {"nonce": "01" * 8}, {"room": "s"}, {"txn": "u"}):
        assert not verify(dataclasses.replace(msg, **change), k.to_broker), change
    assert not verify(dataclasses.replace(msg, mac=""), k.to_broker)
    assert not verify(dataclasses.replace(msg, mac=msg.mac[:-1]), k.to_broker)


def test_session_keys_bind_the_session_nonce():
    k = keys("r")
    probe = sign(Probe("r", "a", 1, False), k.session("aa" * 16))
    assert verify(probe, k.session("aa" * 16)) and not verify(probe, k.session("bb" * 16))


def test_the_mac_covers_the_type_so_two_types_with_the_same_fields_do_not_mix():
    assert canonical(Probe("r", "a", 1, False)) != canonical(Data("r", "a", 1, "False"))


def test_freshness_window():
    assert fresh(1000, now=1030, skew=30) and fresh(1030, now=1000, skew=30)
    assert not fresh(1000, now=1031, skew=30) and not fresh(1031, now=1000, skew=30)


@pytest.mark.parametrize("text, why", [(None, "no room secret"), ("", "no room secret"), ("ab", "64 hex digits"),
                                       ("zz" * 32, "hex digits")])
def test_bad_secrets_say_what_is_wrong(text, why):
    with pytest.raises(CredentialError, match=why):
        parse_secret(text)


def test_room_keys_from_a_secret_are_what_the_broker_derives():
    assert RoomKeys.from_secret(bytes.fromhex(room_secret(BROKER_KEY, "r"))) == keys("r")


def test_the_broker_key_is_made_once_private_and_kept(tmp_path, capsys):
    path = tmp_path / "state" / "broker.key"
    key = load_or_create_key(path)
    assert len(key) == 32 and load_or_create_key(path) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert credentials_main(["room-secret", "--room", "demo", "--state-dir", str(path.parent)]) == 0
    assert json.loads(capsys.readouterr().out) == {"secrets": {"demo": room_secret(key, "demo")}}


def test_minting_without_a_broker_key_fails_clearly(tmp_path, capsys):
    assert credentials_main(["room-secret", "--room", "demo", "--state-dir", str(tmp_path)]) == 2
    assert "no broker key" in capsys.readouterr().err

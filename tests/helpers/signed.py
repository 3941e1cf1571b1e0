"""Signed protocol-v2 messages for the tests, under one fixed broker key.

Registers, introductions and session traffic as the real peers and broker sign them, so that
tests build what the wire carries rather than unsigned stand-ins.
"""

from __future__ import annotations

import time

from wire.auth import RoomKeys, new_nonce, room_secret, sign
from wire.protocol import Data, Endpoint, Intro, Message, Probe, Register, Waiting

BROKER_KEY = bytes(range(32))
SESSION = "5e55" * 8


def keys(room: str) -> RoomKeys:
    return RoomKeys.from_secret(bytes.fromhex(room_secret(BROKER_KEY, room)))


def register(room: str, peer: str, txn: str, private: Endpoint, ts: float | None = None,
             secret_keys: RoomKeys | None = None, relay: Endpoint | None = None,
             predicted: tuple[int, int] = (0, 0)) -> Register:
    msg = Register(room, peer, txn, private, int(time.time() if ts is None else ts), new_nonce(), relay=relay,
                   predicted_port=predicted[0], predicted_count=predicted[1])
    return sign(msg, (secret_keys or keys(room)).to_broker)


def from_broker(msg: Message) -> Message:
    return sign(msg, keys(msg.room).from_broker)  # type: ignore[attr-defined]


def waiting(room: str, txn: str, you: Endpoint) -> Waiting:
    return from_broker(Waiting(room, txn, you))  # type: ignore[return-value]


def intro(room: str, txn: str, you: Endpoint, partner: str, partner_endpoint: Endpoint, partner_private: Endpoint,
          session: str = SESSION) -> Intro:
    return from_broker(Intro(room, txn, you, partner, partner_endpoint, partner_private, session))  # type: ignore


def in_session(msg: Message, session: str = SESSION) -> Message:
    return sign(msg, keys(msg.room).session(session))  # type: ignore[attr-defined]


def probe(room: str, sender: str, seq: int, ack: bool, session: str = SESSION) -> Probe:
    return in_session(Probe(room, sender, seq, ack), session)  # type: ignore[return-value]


def data(room: str, sender: str, seq: int, text: str, session: str = SESSION) -> Data:
    return in_session(Data(room, sender, seq, text), session)  # type: ignore[return-value]

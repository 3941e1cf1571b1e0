"""Who may join a room and who may speak in a session: keys, MACs, freshness (protocol v2).

Three secrets, each derived from the one above it, so that each party holds only what it needs:
- the broker key (32 random bytes, never leaves the broker's node) derives every room's secret:
  room_secret = HMAC-SHA256(broker key, "natlab-v2 room" | room). Whoever may mint credentials
  (the scenario, `make chat-*`) asks the broker's node for one room's secret (server.broker_key)
  and hands it to the peers out of band: a CLI flag or NATLAB_ROOM_SECRET.
- the room secret keys the peer -> broker MACs (Register) and the broker -> peer ones (Waiting,
  Intro), under separate labels so that one direction's MAC is never valid in the other.
- each introduction carries a fresh session nonce; session key = HMAC(room secret, "session" |
  nonce). Probes, data, acks and byes carry a MAC under it: the partner accepts nothing else, so a
  third host that knows both public endpoints (and even the nonce, which travels in clear) cannot
  speak in the session, and a datagram of another session is no good in this one.
MACs are HMAC-SHA256 truncated to 128 bits, over a canonical JSON array of the version, the type
and every field but the MAC itself (docs/protocol.md, "MACs").
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import time
from typing import TypeVar

from wire.protocol import VERSION, Message, fields_of

MAC_HEX = 32  # 128-bit tags
NONCE_HEX = 16  # register nonces: 64 random bits
SESSION_HEX = 32  # session nonces: 128 random bits
SECRET_HEX = 64  # broker keys and room secrets: 256 bits
SECRET_ENV = "NATLAB_ROOM_SECRET"

M = TypeVar("M", bound=Message)


class CredentialError(ValueError):
    """A secret that is missing or not of the expected form."""


def parse_secret(text: str | None, what: str = "room secret") -> bytes:
    """A 64-hex-digit secret as bytes; CredentialError says what is wrong with it."""
    if not text:
        raise CredentialError(f"no {what}: pass --secret or set {SECRET_ENV}")
    text = text.strip()
    if len(text) != SECRET_HEX:
        raise CredentialError(f"the {what} must be {SECRET_HEX} hex digits, not {len(text)} characters")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise CredentialError(f"the {what} must be hex digits") from None


def new_secret() -> str:
    return os.urandom(SECRET_HEX // 2).hex()


def new_nonce(hex_digits: int = NONCE_HEX) -> str:
    return os.urandom(hex_digits // 2).hex()


def _hmac(key: bytes, *parts: str) -> bytes:
    return hmac.new(key, "\x00".join(("natlab-v2", *parts)).encode(), hashlib.sha256).digest()


def room_secret(broker_key: bytes, room: str) -> str:
    """The secret of one room, as the broker derives it and as the peers receive it (hex)."""
    return _hmac(broker_key, "room", room).hex()


@dataclasses.dataclass(frozen=True)
class RoomKeys:
    """The keys of one room: what a peer holding the room secret, and the broker, both derive."""

    to_broker: bytes
    from_broker: bytes
    secret: bytes

    @classmethod
    def from_secret(cls, secret: bytes) -> RoomKeys:
        return cls(_hmac(secret, "peer->broker"), _hmac(secret, "broker->peer"), secret)

    def session(self, nonce: str) -> bytes:
        """The key of the session the broker introduced with `nonce`."""
        return _hmac(self.secret, "session", nonce)


def canonical(msg: Message) -> bytes:
    """What a MAC covers: version, type and every field on the wire but `mac`, as one JSON array."""
    values = [value for name, value in fields_of(msg).items() if name != "mac"]
    return json.dumps([VERSION, msg.TYPE, *values], separators=(",", ":")).encode()


def mac_of(msg: Message, key: bytes) -> str:
    return hmac.new(key, canonical(msg), hashlib.sha256).hexdigest()[:MAC_HEX]


def sign(msg: M, key: bytes) -> M:
    """The message with its `mac` set under `key`."""
    return dataclasses.replace(msg, mac=mac_of(msg, key))  # type: ignore[call-arg]


def verify(msg: Message, key: bytes) -> bool:
    """Whether the message's `mac` is right under `key` (constant-time comparison)."""
    mac = getattr(msg, "mac", "")
    return len(mac) == MAC_HEX and hmac.compare_digest(mac, mac_of(msg, key))


def fresh(ts: int, now: float | None = None, skew: float = 30.0) -> bool:
    """Whether a timestamp lies within `skew` seconds of our clock, either way."""
    now = time.time() if now is None else now
    return abs(now - ts) <= skew

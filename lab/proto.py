"""The rendezvous wire format, shared by the broker, the peers and the pcap analysis.

Each datagram is one compact JSON object: {"natlab": 1, "type": ..., fields...}. Text on the wire
keeps captures readable in Wireshark as they are, and its first byte ('{', 0x7B) falls outside
every range RFC 7983 assigns (STUN 0-3, DTLS 20-63, TURN channels 64-79, RTP 128-191), so STUN
can later share the broker's port. decode() validates everything: a datagram either becomes a
typed message or raises ProtocolError; nothing else escapes.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from dataclasses import dataclass
from typing import ClassVar

VERSION = 1
MAX_DATAGRAM = 1200  # fits any path MTU the lab will meet; larger datagrams are refused


class ProtocolError(ValueError):
    """A datagram that is not a valid message of this protocol."""


@dataclass(frozen=True, order=True)
class Endpoint:
    ip: str
    port: int

    def __post_init__(self) -> None:
        try:
            ipaddress.IPv4Address(self.ip)
        except ValueError as exc:
            raise ProtocolError(f"bad IPv4 address {self.ip!r}") from exc
        if not isinstance(self.port, int) or isinstance(self.port, bool) or not 0 < self.port < 65536:
            raise ProtocolError(f"bad port {self.port!r}")

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        ip, sep, port = text.rpartition(":")
        if not sep or not port.isdigit():
            raise ProtocolError(f"bad endpoint {text!r}; expected IP:PORT")
        return cls(ip, int(port))

    def to_tuple(self) -> tuple[str, int]:
        return (self.ip, self.port)


@dataclass(frozen=True)
class Message:
    TYPE: ClassVar[str] = ""


@dataclass(frozen=True)
class Register(Message):
    """Peer -> broker: put me in this room. Sent again until answered; the answer is the same."""

    TYPE: ClassVar[str] = "register"
    room: str
    peer: str
    txn: str


@dataclass(frozen=True)
class Waiting(Message):
    """Broker -> peer: registered, partner not here yet."""

    TYPE: ClassVar[str] = "waiting"
    room: str
    txn: str
    you: Endpoint


@dataclass(frozen=True)
class Intro(Message):
    """Broker -> peer: your partner, at the public endpoint the broker observed."""

    TYPE: ClassVar[str] = "intro"
    room: str
    txn: str
    you: Endpoint
    partner: str
    partner_endpoint: Endpoint


@dataclass(frozen=True)
class Error(Message):
    TYPE: ClassVar[str] = "error"
    code: str
    reason: str


@dataclass(frozen=True)
class Ping(Message):
    """A reachability probe. The tag names the experiment it belongs to, so pcaps tell them apart."""

    TYPE: ClassVar[str] = "ping"
    tag: str
    seq: int


@dataclass(frozen=True)
class Pong(Message):
    TYPE: ClassVar[str] = "pong"
    tag: str
    seq: int


@dataclass(frozen=True)
class Probe(Message):
    """Peer -> peer hole-punching probe. ack says the sender has already heard the receiver."""

    TYPE: ClassVar[str] = "probe"
    room: str
    sender: str
    seq: int
    ack: bool


@dataclass(frozen=True)
class Data(Message):
    """Peer -> peer payload over the punched path."""

    TYPE: ClassVar[str] = "data"
    room: str
    sender: str
    seq: int
    text: str


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.TYPE: cls for cls in (Register, Waiting, Intro, Error, Ping, Pong, Probe, Data)
}
MAX_TEXT = 256  # longest string field


def encode(msg: Message) -> bytes:
    body: dict = {"natlab": VERSION, "type": msg.TYPE}
    for f in dataclasses.fields(msg):
        value = getattr(msg, f.name)
        body[f.name] = str(value) if isinstance(value, Endpoint) else value
    data = json.dumps(body, separators=(",", ":")).encode()
    if len(data) > MAX_DATAGRAM:
        raise ProtocolError(f"{msg.TYPE} message of {len(data)} bytes exceeds {MAX_DATAGRAM}")
    return data


def _field(cls: type[Message], name: str, kind: str, raw: object) -> object:
    if kind == "Endpoint":
        if not isinstance(raw, str):
            raise ProtocolError(f"{cls.TYPE}.{name} must be an IP:PORT string")
        return Endpoint.parse(raw)
    expected = {"str": str, "int": int, "bool": bool}[kind]
    # bool is an int in Python; keep the two apart.
    if not isinstance(raw, expected) or (expected is int and isinstance(raw, bool)):
        raise ProtocolError(f"{cls.TYPE}.{name} must be {kind}")
    if isinstance(raw, str) and len(raw) > MAX_TEXT:
        raise ProtocolError(f"{cls.TYPE}.{name} longer than {MAX_TEXT} characters")
    return raw


def decode(data: bytes) -> Message:
    """Parse one datagram. Raises ProtocolError for anything that is not a valid message."""
    if len(data) > MAX_DATAGRAM:
        raise ProtocolError(f"datagram of {len(data)} bytes exceeds {MAX_DATAGRAM}")
    if not data.startswith(b"{"):
        raise ProtocolError("not a natlab message (first byte is not '{')")
    try:
        body = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ProtocolError("not a JSON object")
    if body.get("natlab") != VERSION:
        raise ProtocolError(f"unsupported protocol version {body.get('natlab')!r}")
    cls = MESSAGE_TYPES.get(body.get("type"))  # type: ignore[arg-type]
    if cls is None:
        raise ProtocolError(f"unknown message type {body.get('type')!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    extra = set(body) - names - {"natlab", "type"}
    if extra:
        raise ProtocolError(f"{cls.TYPE}: unexpected fields {sorted(extra)}")
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in body:
            raise ProtocolError(f"{cls.TYPE}: missing field {f.name!r}")
        values[f.name] = _field(cls, f.name, str(f.type), body[f.name])
    return cls(**values)


def try_decode(data: bytes) -> Message | None:
    """decode(), or None for anything that is not ours: for analysis of mixed captures."""
    try:
        return decode(data)
    except ProtocolError:
        return None

"""The rendezvous wire format (version 2), shared by the broker, the peers and the pcap analysis.

Each datagram is one compact JSON object: {"natlab": 2, "type": ..., fields...}; docs/protocol.md
is its specification. Text on the wire keeps captures readable in Wireshark as they are, and its
first byte ('{', 0x7B) falls outside every range RFC 7983 assigns (STUN 0-3, DTLS 20-63, TURN
channels 64-79, RTP 128-191), so STUN shares the broker's port. decode() validates the form of
everything: a datagram either becomes a typed message or raises ProtocolError; nothing else
escapes. Whether a message is genuine (its `mac`) is wire.auth' business, not the codec's.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import json
import re
from dataclasses import dataclass
from typing import ClassVar

VERSION = 2
MAX_DATAGRAM = 1200  # fits any path MTU the lab will meet; larger datagrams are refused
MAX_TEXT = 256  # longest free-text field (Data.text, Error.reason)
MAX_INT = 2**53  # integers stay exact in every JSON reader
MAX_PREDICTED = 64  # predicted ports one peer may announce: what its partner sprays is bounded

# Field kinds beyond str/int/bool/Endpoint. They are plain str at run time; the decoder reads the
# annotation's name and checks the form, so names cannot carry newlines into logs, nor hex junk.
Name = str  # room, peer ids, transaction ids, tags, error codes
Hex = str  # nonces, session ids and MACs: lowercase hex
NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
HEX_RE = re.compile(r"[0-9a-f]{0,64}")


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
        if not sep or not (port.isascii() and port.isdigit()) or len(port) > 5:
            raise ProtocolError(f"bad endpoint {text!r}; expected IP:PORT")
        return cls(ip, int(port))

    def to_tuple(self) -> tuple[str, int]:
        return (self.ip, self.port)


# A field added later, left off the wire (and out of MACs) at its default: a message that does not
# use it is byte for byte what it was before the field existed, so older captures still decode.
SPARE = {"spare": True}  # a field's metadata


@dataclass(frozen=True)
class Message:
    TYPE: ClassVar[str] = ""
    PRIVATE: ClassVar[tuple[str, ...]] = ()  # fields that carry a private (LAN) endpoint by design


def _check_prediction(kind: str, first: int, count: int) -> None:
    if not 0 <= first < 65536 or not 0 <= count <= MAX_PREDICTED or bool(first) != bool(count):
        raise ProtocolError(f"{kind}: a prediction is a port (1-65535) and a count of 1 to {MAX_PREDICTED}, "
                            f"not {first!r}, {count!r}")


@dataclass(frozen=True)
class Register(Message):
    """Peer -> broker: put me in this room. Sent again until answered, each time with a fresh ts
    and nonce (a byte-identical register is a replay); `mac` proves the room secret."""

    TYPE: ClassVar[str] = "register"
    PRIVATE: ClassVar[tuple[str, ...]] = ("private",)
    room: Name
    peer: Name
    txn: Name
    private: Endpoint  # the peer's own socket address, for a partner behind the same NAT
    ts: int  # Unix time, seconds
    nonce: Hex
    mac: Hex = ""
    relay: Endpoint | None = None  # the peer's relayed candidate (its TURN allocation), when it has one
    # Port prediction: the first of `predicted_count` public ports its (sequential, symmetric) NAT will
    # likely give the peer's next flows, from two STUN bindings; left off the wire when 0.
    predicted_port: int = dataclasses.field(default=0, metadata=SPARE)
    predicted_count: int = dataclasses.field(default=0, metadata=SPARE)

    def __post_init__(self) -> None:
        _check_prediction(self.TYPE, self.predicted_port, self.predicted_count)


@dataclass(frozen=True)
class Waiting(Message):
    """Broker -> peer: registered, partner not here yet."""

    TYPE: ClassVar[str] = "waiting"
    room: Name
    txn: Name
    you: Endpoint
    mac: Hex = ""


@dataclass(frozen=True)
class Intro(Message):
    """Broker -> peer: your partner, at the public endpoint the broker observed and the private one
    it declared, and the session both must prove in every datagram they exchange."""

    TYPE: ClassVar[str] = "intro"
    PRIVATE: ClassVar[tuple[str, ...]] = ("partner_private",)
    room: Name
    txn: Name
    you: Endpoint
    partner: Name
    partner_endpoint: Endpoint
    partner_private: Endpoint
    session: Hex
    mac: Hex = ""
    partner_relay: Endpoint | None = None  # the partner's relayed candidate, as it registered it
    partner_predicted_port: int = dataclasses.field(default=0, metadata=SPARE)  # the partner's predicted ports
    partner_predicted_count: int = dataclasses.field(default=0, metadata=SPARE)

    def __post_init__(self) -> None:
        _check_prediction(self.TYPE, self.partner_predicted_port, self.partner_predicted_count)

    @property
    def partner_predicted(self) -> list[Endpoint]:
        """The partner's predicted public endpoints: its public address at each predicted port."""
        first, count = self.partner_predicted_port, self.partner_predicted_count
        return [Endpoint(self.partner_endpoint.ip, port) for port in range(first, min(65536, first + count))
                if first and port != self.partner_endpoint.port]


@dataclass(frozen=True)
class Error(Message):
    TYPE: ClassVar[str] = "error"
    code: Name
    reason: str


@dataclass(frozen=True)
class Ping(Message):
    """A reachability probe. The tag names the experiment it belongs to, so pcaps tell them apart."""

    TYPE: ClassVar[str] = "ping"
    tag: Name
    seq: int


@dataclass(frozen=True)
class Pong(Message):
    TYPE: ClassVar[str] = "pong"
    tag: Name
    seq: int


@dataclass(frozen=True)
class Probe(Message):
    """Peer -> peer hole-punching probe (and keepalive). ack says the sender has heard the receiver."""

    TYPE: ClassVar[str] = "probe"
    room: Name
    sender: Name
    seq: int
    ack: bool
    mac: Hex = ""


@dataclass(frozen=True)
class Data(Message):
    """Peer -> peer payload over the punched path."""

    TYPE: ClassVar[str] = "data"
    room: Name
    sender: Name
    seq: int
    text: str
    mac: Hex = ""
    send: int = dataclasses.field(default=1, metadata=SPARE)  # which send of `seq` this is; the Ack echoes it


@dataclass(frozen=True)
class Ack(Message):
    """Peer -> peer: Data (or Bye) `seq` arrived; senders retransmit until acknowledged. `send` echoes the
    Data's: which of its sends arrived, so every ack times a round trip exactly, a message sent again
    too (as QUIC's packet numbers and TCP's timestamps do), where Karn's rule would discard the sample."""

    TYPE: ClassVar[str] = "ack"
    room: Name
    sender: Name
    seq: int
    mac: Hex = ""
    send: int = dataclasses.field(default=1, metadata=SPARE)


@dataclass(frozen=True)
class Bye(Message):
    """Peer -> peer: the sender leaves the session; acknowledged like Data."""

    TYPE: ClassVar[str] = "bye"
    room: Name
    sender: Name
    seq: int
    mac: Hex = ""


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.TYPE: cls for cls in (Register, Waiting, Intro, Error, Ping, Pong, Probe, Data, Ack, Bye)
}


OPTIONAL = "Endpoint | None"  # the one optional kind: absent from the wire (and from MACs) when None


def fields_of(msg: Message) -> dict[str, object]:
    """The message's fields as they go on the wire (endpoints as IP:PORT text), in declared order; an
    optional field that is None is left out, so a message without it is what it was before it existed."""
    out = {}
    for f in dataclasses.fields(msg):
        value = getattr(msg, f.name)
        if (value is None and str(f.type) == OPTIONAL) or (f.name in _spare(type(msg)) and value == f.default):
            continue
        out[f.name] = str(value) if isinstance(value, Endpoint) else value
    return out


def encode(msg: Message) -> bytes:
    body: dict = {"natlab": VERSION, "type": msg.TYPE, **fields_of(msg)}
    data = json.dumps(body, separators=(",", ":")).encode()
    if len(data) > MAX_DATAGRAM:
        raise ProtocolError(f"{msg.TYPE} message of {len(data)} bytes exceeds {MAX_DATAGRAM}")
    return data


def _field(cls: type[Message], name: str, kind: str, raw: object) -> object:
    if kind in ("Endpoint", OPTIONAL):
        if not isinstance(raw, str) or len(raw) > 21:
            raise ProtocolError(f"{cls.TYPE}.{name} must be an IP:PORT string")
        return Endpoint.parse(raw)
    expected = {"str": str, "Name": str, "Hex": str, "int": int, "bool": bool}[kind]
    # bool is an int in Python; keep the two apart.
    if not isinstance(raw, expected) or (expected is int and isinstance(raw, bool)):
        raise ProtocolError(f"{cls.TYPE}.{name} must be {kind}")
    if isinstance(raw, int) and not isinstance(raw, bool) and not 0 <= raw <= MAX_INT:
        raise ProtocolError(f"{cls.TYPE}.{name} out of range 0..2^53")
    if kind == "Name" and not NAME_RE.fullmatch(raw):  # type: ignore[arg-type]
        raise ProtocolError(f"{cls.TYPE}.{name} must be 1-64 of A-Z a-z 0-9 . _ -")
    if kind == "Hex" and not HEX_RE.fullmatch(raw):  # type: ignore[arg-type]
        raise ProtocolError(f"{cls.TYPE}.{name} must be at most 64 lowercase hex digits")
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
    version, kind = body.get("natlab"), body.get("type")
    if type(version) is not int or version != VERSION:  # neither True nor 2.0
        raise ProtocolError(f"unsupported protocol version {str(version)[:20]!r}")
    cls = MESSAGE_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ProtocolError(f"unknown message type {str(kind)[:20]!r}")
    spec = _spec(cls)
    extra = set(body) - spec.keys() - {"natlab", "type"}
    if extra:
        raise ProtocolError(f"{cls.TYPE}: unexpected fields {sorted(extra)[:4]}")
    values = {}
    for name, kind in spec.items():
        if name not in body:
            if kind == OPTIONAL or name in _spare(cls):
                continue
            raise ProtocolError(f"{cls.TYPE}: missing field {name!r}")
        values[name] = _field(cls, name, kind, body[name])
    return cls(**values)


@functools.cache
def _spare(cls: type[Message]) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls) if f.metadata.get("spare"))


@functools.cache
def _spec(cls: type[Message]) -> dict[str, str]:
    """A message type's fields and their kinds (annotation names), in declared order: looked up
    once, as a capture's analysis decodes thousands of datagrams."""
    return {f.name: str(f.type) for f in dataclasses.fields(cls)}


def text_without_private(msg: Message) -> bytes:
    """The message as text, less the fields that carry a private endpoint by design (PRIVATE).

    What a leak scan of WAN traffic may search: a private address anywhere else in the message
    (a name, a text) is still there to be found, and unescaped, as the receiver reads it.
    """
    kept = {k: v for k, v in fields_of(msg).items() if k not in msg.PRIVATE}
    return json.dumps({"type": msg.TYPE, **kept}, ensure_ascii=False, separators=(",", ":")).encode()


def try_decode(data: bytes) -> Message | None:
    """decode(), or None for anything that is not ours: for analysis of mixed captures."""
    try:
        return decode(data)
    except ProtocolError:
        return None

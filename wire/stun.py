"""STUN (RFC 8489, RFC 5780, RFC 3489 compatibility) on top of aioice's codec.

aioice's stun module is a well-kept codec (aiortc's ICE stack) and Debian packages it, so the
broker and the classifier use it rather than a hand-written one. This module adds what the lab
needs beyond it, in one place: the RFC 7983 demultiplexing test, two attributes aioice does not
know (RESPONSE-PORT from RFC 5780, UNKNOWN-ATTRIBUTES for 420 errors), a decode that turns
every parse failure into StunError, and the header handling of RFC 3489 clients, whose
transaction id is 16 bytes with no magic cookie.
"""

from __future__ import annotations

import struct

from aioice import stun

COOKIE = stun.COOKIE
HEADER = 20
CHANGE_IP = 0x04
CHANGE_PORT = 0x02
RESPONSE_PORT = 0x0027
UNKNOWN_ATTRIBUTES = 0x000A
Class, Method, Message = stun.Class, stun.Method, stun.Message


def _pack_response_port(value: int) -> bytes:
    return struct.pack("!HH", value, 0)


def _unpack_response_port(data: bytes) -> int:
    return struct.unpack("!H", data[:2])[0]


def _pack_type_list(value: list[int]) -> bytes:
    return struct.pack(f"!{len(value)}H", *value)


def _unpack_type_list(data: bytes) -> list[int]:
    return list(struct.unpack(f"!{len(data) // 2}H", data[: len(data) // 2 * 2]))


for _entry in (
    (RESPONSE_PORT, "RESPONSE-PORT", _pack_response_port, _unpack_response_port),
    (UNKNOWN_ATTRIBUTES, "UNKNOWN-ATTRIBUTES", _pack_type_list, _unpack_type_list),
):
    stun.ATTRIBUTES_BY_TYPE.setdefault(_entry[0], _entry)
    stun.ATTRIBUTES_BY_NAME.setdefault(_entry[1], _entry)


class StunError(ValueError):
    pass


def is_stun(data: bytes) -> bool:
    """RFC 7983: a first byte of 0-3 is STUN; the lab's own messages start with '{'."""
    return len(data) >= HEADER and data[0] < 4


# TURN (RFC 8656) on the same port: methods beyond Binding, and the relayed payload's two framings.
BINDING, ALLOCATE = 0x001, 0x003  # methods
REQUEST, INDICATION, SUCCESS, ERROR = 0x000, 0x010, 0x100, 0x110  # classes (their bits in the message type)
METHOD_NAMES = {BINDING: "Binding", ALLOCATE: "Allocate", 0x004: "Refresh", 0x006: "Send", 0x007: "Data",
                0x008: "CreatePermission", 0x009: "ChannelBind"}
CLASS_NAMES = {REQUEST: "request", INDICATION: "indication", SUCCESS: "success", ERROR: "error"}
SEND_INDICATION, DATA_INDICATION = 0x0016, 0x0017  # message types


def method_and_class(data: bytes) -> tuple[int, int]:
    """A STUN header's method and class (RFC 8489 section 5: the bits are interleaved)."""
    kind = struct.unpack_from("!H", data)[0]
    return (kind & 0x000F) | ((kind & 0x00E0) >> 1) | ((kind & 0x3E00) >> 2), kind & 0x0110


def is_channel_data(data: bytes) -> bool:
    """RFC 8656 ChannelData: a channel number 0x4000-0x4FFF, then the length of what follows."""
    return len(data) >= 4 and 0x40 <= data[0] <= 0x4F and struct.unpack_from("!H", data, 2)[0] <= len(data) - 4


def relayed_payload(data: bytes) -> bytes | None:
    """What a TURN datagram carries for a peer: a ChannelData's bytes, or a Send/Data indication's DATA
    attribute; None for anything else (STUN and TURN control included)."""
    if is_channel_data(data):
        return data[4:4 + struct.unpack_from("!H", data, 2)[0]]
    if len(data) >= HEADER and struct.unpack_from("!H", data)[0] in (SEND_INDICATION, DATA_INDICATION):
        try:
            return decode(data).attributes.get("DATA")
        except StunError:
            return None
    return None


def is_classic(data: bytes) -> bool:
    """An RFC 3489 message: no magic cookie, the transaction id is all 16 bytes."""
    return data[4:8] != struct.pack("!I", COOKIE)


def attribute_types(data: bytes) -> list[int]:
    """The attribute types of a message, in order; StunError if the TLVs do not tile the body."""
    types, pos = [], HEADER
    while pos < len(data):
        if pos + 4 > len(data):
            raise StunError("truncated attribute header")
        attr_type, length = struct.unpack("!HH", data[pos : pos + 4])
        pos += 4 + length + (-length % 4)
        if pos > len(data):
            raise StunError(f"attribute 0x{attr_type:04x} runs past the end of the message")
        types.append(attr_type)
    return types


def decode(data: bytes) -> Message:
    """Parse a STUN message; any malformation is a StunError (never another exception)."""
    if not is_stun(data):
        raise StunError("not a STUN message")
    length = struct.unpack("!H", data[2:4])[0]
    if length % 4 or len(data) != HEADER + length:
        raise StunError("message length does not match the datagram")
    attribute_types(data)
    try:
        return stun.parse_message(data)
    except Exception as exc:  # noqa: BLE001 - aioice raises ValueError, struct.error, IndexError, ...
        raise StunError(f"malformed STUN message: {exc}") from None


def encode(msg: Message, request: bytes | None = None, fingerprint: bool = True) -> bytes:
    """Serialise; for an answer to an RFC 3489 request, restore its 16-byte transaction id."""
    if fingerprint:
        msg.attributes.pop("FINGERPRINT", None)
        msg.attributes["FINGERPRINT"] = stun.message_fingerprint(bytes(msg))
    data = bytes(msg)
    if request is not None and is_classic(request):
        data = data[:4] + request[4:8] + data[8:]
    return data

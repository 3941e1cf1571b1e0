"""What each captured packet does in the story of a run, decoded from the protocol it carries.

Roles come from decoding the payload (wire.protocol), never from guessing by size or port: a
datagram is a probe because it says so. Decoders are tried in order; the first that recognises a
packet names its role. STUN (RFC 8489, told apart by its first byte as in RFC 7983) has its
own role: address discovery, as classifiers and standard clients do against the broker.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from lab.analysis.packets import Packet
from wire.protocol import Ack, Bye, Data, Error, Intro, Message, Ping, Pong, Probe, Register, Waiting


class PacketRole(str, Enum):
    REGISTRATION = "registration"  # peer <-> broker: register, waiting, the broker's errors
    INTRODUCTION = "introduction"  # broker -> peer: your partner is at ...
    PROBE = "probe"  # peer -> peer hole punching
    DATA = "data"  # peer -> peer payload over the punched path (and the chat's acks and byes)
    CONTROL = "control"  # the control experiments' pings and pongs
    STUN = "stun"  # STUN Binding requests and answers: address and NAT behaviour discovery
    TURN = "turn"  # TURN control with the relay: Allocate, Refresh, CreatePermission, ChannelBind
    OTHER = "other"  # anything no decoder recognises (ICMP, foreign traffic)


_LAB_ROLES: dict[type[Message], PacketRole] = {
    Register: PacketRole.REGISTRATION,
    Waiting: PacketRole.REGISTRATION,
    Error: PacketRole.REGISTRATION,
    Intro: PacketRole.INTRODUCTION,
    Probe: PacketRole.PROBE,
    Data: PacketRole.DATA,
    Ack: PacketRole.DATA,
    Bye: PacketRole.DATA,
    Ping: PacketRole.CONTROL,
    Pong: PacketRole.CONTROL,
}


def lab_role(packet: Packet) -> PacketRole | None:
    """The role of a lab protocol datagram (already decoded by lab.analysis.packets), None for anything else."""
    return _LAB_ROLES.get(type(packet.msg)) if packet.msg is not None else None


def stun_role(packet: Packet) -> PacketRole | None:
    """STUN messages that parse as such (a first byte of 0-3 alone is not enough): Binding is STUN,
    every other method TURN (a relayed lab message has its own role already)."""
    payload = packet.payload
    if len(payload) < 20 or payload[0] > 3:  # wire.stun.is_stun's test, before loading aioice for it
        return None
    from wire import stun  # aioice's codec: loaded only for the captures that hold STUN

    if not stun.is_stun(payload):
        return None
    try:
        stun.decode(packet.payload)
    except stun.StunError:
        return None
    return PacketRole.STUN if stun.method_and_class(payload)[0] == stun.BINDING else PacketRole.TURN


def stun_summary(payload: bytes) -> str:
    """A STUN/TURN message in a few words: "Allocate request", "Allocate error 401"."""
    from wire import stun

    method, kind = stun.method_and_class(payload)
    text = f"{stun.METHOD_NAMES.get(method, f'method {method:#x}')} {stun.CLASS_NAMES[kind]}"
    if kind == stun.ERROR:
        try:
            text += f" {stun.decode(payload).attributes['ERROR-CODE'][0]}"
        except (stun.StunError, KeyError):
            pass
    return text


Decoder = Callable[[Packet], "PacketRole | None"]
DECODERS: tuple[Decoder, ...] = (lab_role, stun_role)


def role_of(packet: Packet) -> PacketRole:
    for decode in DECODERS:
        role = decode(packet)
        if role is not None:
            return role
    return PacketRole.OTHER

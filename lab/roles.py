"""What each captured packet does in the story of a run, decoded from the protocol it carries.

Roles come from decoding the payload (lab.proto), never from guessing by size or port: a
datagram is a probe because it says so. Decoders are tried in order; the first that recognises a
packet names its role. When the broker speaks STUN, a STUN decoder joins DECODERS (Binding
requests and responses are registrations; peer-to-peer Binding checks are probes) and nothing
downstream changes.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from lab.pcaps import Packet
from lab.proto import Data, Error, Intro, Message, Ping, Pong, Probe, Register, Waiting


class PacketRole(str, Enum):
    REGISTRATION = "registration"  # peer <-> broker: register, waiting, the broker's errors
    INTRODUCTION = "introduction"  # broker -> peer: your partner is at ...
    PROBE = "probe"  # peer -> peer hole punching
    DATA = "data"  # peer -> peer payload over the punched path
    CONTROL = "control"  # the control experiments' pings and pongs
    OTHER = "other"  # anything no decoder recognises (ICMP, foreign traffic)


_LAB_ROLES: dict[type[Message], PacketRole] = {
    Register: PacketRole.REGISTRATION,
    Waiting: PacketRole.REGISTRATION,
    Error: PacketRole.REGISTRATION,
    Intro: PacketRole.INTRODUCTION,
    Probe: PacketRole.PROBE,
    Data: PacketRole.DATA,
    Ping: PacketRole.CONTROL,
    Pong: PacketRole.CONTROL,
}


def lab_role(packet: Packet) -> PacketRole | None:
    """The role of a lab protocol datagram (already decoded by lab.pcaps), None for anything else."""
    return _LAB_ROLES.get(type(packet.msg)) if packet.msg is not None else None


Decoder = Callable[[Packet], "PacketRole | None"]
DECODERS: tuple[Decoder, ...] = (lab_role,)


def role_of(packet: Packet) -> PacketRole:
    for decode in DECODERS:
        role = decode(packet)
        if role is not None:
            return role
    return PacketRole.OTHER

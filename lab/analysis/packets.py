"""Read the lab's pcaps into flat packet records that the checks can reason about.

Each record keeps what the analysis needs: where it was seen (vantage point), when (kernel
timestamp), its size on the wire, link and IP addresses, UDP and TCP ports, the payload, and the
payload decoded as a lab message when it is one (lab messages are UDP; a user's program may speak
TCP, whose segments keep their sequence number too). ICMP errors keep the addresses of the packet they quote, since a leak
can hide there too.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from lab.analysis.pcap_io import Capture, Frame, read_captures, read_pcap
from wire.protocol import Endpoint, Message, try_decode

PROTOCOL_NAMES = {1: "icmp", 6: "tcp", 17: "udp"}


def protocol_name(number: int) -> str:
    """An IP protocol number as tshark names it (the number itself for the rest)."""
    return PROTOCOL_NAMES.get(number, str(number))

@dataclass(frozen=True)
class Packet:
    vantage: str
    time: float
    src_mac: str
    dst_mac: str
    src: str
    dst: str
    proto: int
    sport: int | None = None
    dport: int | None = None
    payload: bytes = b""
    msg: Message | None = None
    quoted: tuple[str, ...] = ()  # addresses inside an ICMP error's quoted header
    length: int = 0  # bytes of the captured frame
    relayed: bool = False  # the lab message came inside TURN framing (ChannelData, Send/Data indication)
    seq: int | None = None  # TCP: the segment's sequence number (NAT leaves it alone: it follows the segment)

    @property
    def src_ep(self) -> Endpoint | None:
        return _endpoint(self.src, self.sport) if self.sport else None

    @property
    def dst_ep(self) -> Endpoint | None:
        return _endpoint(self.dst, self.dport) if self.dport else None


@lru_cache(maxsize=1 << 16)
def _endpoint(address: str, port: int) -> Endpoint:
    """Endpoints are immutable and checked when made: the checks ask for the same ones thousands of times."""
    return Endpoint(address, port)


ETH_IPV4 = b"\x08\x00"  # EtherType
ICMP, TCP, UDP = 1, 6, 17
ICMP_ERRORS = {3, 4, 5, 11, 12}  # the ICMP types that quote the header of the packet they answer


def _mac(raw: bytes) -> str:
    return raw.hex(":")


def _ip(raw: bytes) -> str:
    return socket.inet_ntoa(raw)


class Messages(dict):
    """Payload -> its lab message (None if not one) and whether TURN framing carried it, each payload
    decoded once: a datagram is captured at up to four vantage points, and a message is immutable,
    so its sightings share it."""

    def __missing__(self, payload: bytes) -> tuple[Message | None, bool]:
        decoded = self[payload] = decode_payload(payload)
        return decoded


def decode_payload(payload: bytes) -> tuple[Message | None, bool]:
    """The lab message a UDP payload carries, directly or relayed through TURN (its first byte tells)."""
    if payload[:1] == b"{":
        return try_decode(payload), False
    if payload and payload[0] < 0x50:  # STUN/TURN (0-3) or a TURN channel (0x40-0x4F): RFC 7983
        from wire.stun import relayed_payload  # aioice's codec: loaded only for captures with TURN

        inner = relayed_payload(payload)
        if inner is not None:
            msg = try_decode(inner)
            return msg, msg is not None
    return None, False


def parse_frame(vantage: str, time: float, frame: bytes, messages: Messages | None = None) -> Packet | None:
    """One Ethernet frame as a record, None unless it carries IPv4. Decoded by hand from the headers
    the lab sees (Ethernet, IPv4, UDP, TCP, ICMP): scapy's dissection costs a hundred times more, and a big
    lab's run holds a hundred thousand frames. `messages` shares payload decodings across frames."""
    if len(frame) < 34 or frame[12:14] != ETH_IPV4:
        return None
    ihl = (frame[14] & 0x0F) * 4
    total = struct.unpack_from("!H", frame, 16)[0]
    proto = frame[23]
    head = (vantage, time, _mac(frame[6:12]), _mac(frame[0:6]), _ip(frame[26:30]), _ip(frame[30:34]), proto)
    l4, end = 14 + ihl, min(len(frame), 14 + total)
    if proto == ICMP and end - l4 >= 8 + 20 and frame[l4] in ICMP_ERRORS:
        quoted = l4 + 8
        return Packet(*head, quoted=(_ip(frame[quoted + 12:quoted + 16]), _ip(frame[quoted + 16:quoted + 20])),
                      length=len(frame))
    if proto == UDP and end - l4 >= 8:
        sport, dport = struct.unpack_from("!HH", frame, l4)
        payload = frame[l4 + 8:end]
        msg, relayed = decode_payload(payload) if messages is None else messages[payload]
        return Packet(*head, sport, dport, payload, msg, length=len(frame), relayed=relayed)
    if proto == TCP and end - l4 >= 20:  # a user's program may speak TCP: ports, sequence number, data
        sport, dport, seq = struct.unpack_from("!HHI", frame, l4)
        return Packet(*head, sport, dport, frame[l4 + (frame[l4 + 12] >> 4) * 4:end], length=len(frame), seq=seq)
    return Packet(*head, length=len(frame))


def packets(vantage: str, frames: list[Frame], messages: Messages | None = None) -> list[Packet]:
    """The IPv4 frames of one capture point as records; `messages` shares decodings across captures."""
    messages = Messages() if messages is None else messages
    out = []
    for frame in frames:
        record = parse_frame(vantage, frame.time, frame.data, messages)
        if record is not None:
            out.append(record)
    return out


def load(path: Path, vantage: str | None = None) -> list[Packet]:
    """The packet records of one pcap, named after the file unless `vantage` says otherwise."""
    return packets(vantage or path.stem, read_pcap(path).frames)


def records(captures: dict[str, Capture]) -> dict[str, list[Packet]]:
    """The packet records of every capture of a run, keyed by vantage point."""
    messages = Messages()
    return {vantage: packets(vantage, capture.frames, messages) for vantage, capture in captures.items()}


def load_run(run_dir: Path) -> dict[str, list[Packet]]:
    """Every pcap of a run as packet records, keyed by vantage point (the file name without .pcap)."""
    return records(read_captures(run_dir))

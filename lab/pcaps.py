"""Read the lab's pcaps into flat packet records that the checks can reason about.

Each record keeps what the analysis needs: where it was seen (vantage point), when (kernel
timestamp), its size on the wire, link and IP addresses, UDP ports, the payload, and the payload
decoded as a lab message when it is one. ICMP errors keep the addresses of the packet they quote, since a leak
can hide there too.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from lab.proto import Endpoint, Message, try_decode


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

    @property
    def src_ep(self) -> Endpoint | None:
        return Endpoint(self.src, self.sport) if self.sport else None

    @property
    def dst_ep(self) -> Endpoint | None:
        return Endpoint(self.dst, self.dport) if self.dport else None


ETH_IPV4 = 0x0800
ICMP, UDP = 1, 17
ICMP_ERRORS = {3, 4, 5, 11, 12}  # the ICMP types that quote the header of the packet they answer


def _mac(raw: bytes) -> str:
    return raw.hex(":")


def _ip(raw: bytes) -> str:
    return socket.inet_ntoa(raw)


def parse_frame(vantage: str, time: float, frame: bytes) -> Packet | None:
    """One Ethernet frame as a record, None unless it carries IPv4. Decoded by hand from the headers
    the lab uses (Ethernet, IPv4, UDP, ICMP): scapy's dissection costs a hundred times more, and a big
    lab's run holds a hundred thousand frames."""
    if len(frame) < 34 or struct.unpack_from("!H", frame, 12)[0] != ETH_IPV4:
        return None
    ihl = (frame[14] & 0x0F) * 4
    total = struct.unpack_from("!H", frame, 16)[0]
    proto = frame[23]
    fields: dict = {
        "vantage": vantage, "time": time, "dst_mac": _mac(frame[0:6]), "src_mac": _mac(frame[6:12]),
        "src": _ip(frame[26:30]), "dst": _ip(frame[30:34]), "proto": proto, "length": len(frame),
    }
    l4, end = 14 + ihl, min(len(frame), 14 + total)
    if proto == ICMP and end - l4 >= 8 + 20 and frame[l4] in ICMP_ERRORS:
        quoted = l4 + 8
        fields["quoted"] = (_ip(frame[quoted + 12:quoted + 16]), _ip(frame[quoted + 16:quoted + 20]))
    elif proto == UDP and end - l4 >= 8:
        sport, dport = struct.unpack_from("!HH", frame, l4)
        payload = frame[l4 + 8:end]
        fields.update(sport=sport, dport=dport, payload=payload, msg=try_decode(payload))
    return Packet(**fields)


def load(path: Path, vantage: str | None = None) -> list[Packet]:
    from scapy.utils import RawPcapReader

    vantage = vantage or path.stem
    out = []
    with RawPcapReader(str(path)) as reader:
        scale = 1e-9 if reader.nano else 1e-6
        for data, meta in reader:
            record = parse_frame(vantage, meta.sec + scale * meta.usec, data)
            if record is not None:
                out.append(record)
    return out


def load_run(run_dir: Path) -> dict[str, list[Packet]]:
    """Every pcap of a run, keyed by vantage point (the file name without .pcap)."""
    return {path.stem: load(path) for path in sorted(run_dir.glob("*.pcap"))}

"""Read the lab's pcaps into flat packet records that the checks can reason about.

Each record keeps what the analysis needs: where it was seen (vantage point), when (kernel
timestamp), its size on the wire, link and IP addresses, UDP ports, the payload, and the payload
decoded as a lab message when it is one. ICMP errors keep the addresses of the packet they quote, since a leak
can hide there too.
"""

from __future__ import annotations

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


def load(path: Path, vantage: str | None = None) -> list[Packet]:
    from scapy.layers.inet import ICMP, IP, UDP, IPerror
    from scapy.layers.l2 import Ether
    from scapy.utils import PcapReader

    vantage = vantage or path.stem
    out = []
    with PcapReader(str(path)) as reader:
        for frame in reader:
            if not frame.haslayer(IP):
                continue
            ip = frame[IP]
            eth = frame[Ether] if frame.haslayer(Ether) else None
            fields = {
                "vantage": vantage,
                "time": float(frame.time),
                "src_mac": eth.src if eth else "",
                "dst_mac": eth.dst if eth else "",
                "src": ip.src,
                "dst": ip.dst,
                "proto": ip.proto,
                "length": len(frame),
            }
            if ip.haslayer(ICMP) and ip.haslayer(IPerror):
                fields["quoted"] = (ip[IPerror].src, ip[IPerror].dst)
            elif ip.proto == 17 and ip.haslayer(UDP):
                udp = ip[UDP]
                payload = bytes(udp.payload)
                fields.update(sport=udp.sport, dport=udp.dport, payload=payload, msg=try_decode(payload))
            out.append(Packet(**fields))
    return out


def load_run(run_dir: Path) -> dict[str, list[Packet]]:
    """Every pcap of a run, keyed by vantage point (the file name without .pcap)."""
    return {path.stem: load(path) for path in sorted(run_dir.glob("*.pcap"))}

"""All capture points of a run in one pcapng, in time order, each packet on its vantage point.

pcapng gives every packet an interface; here each vantage point is one interface named after it
(`tshark -T fields -e frame.interface_name`), so the merged file keeps where each copy of a
datagram was seen. Written with scapy, so no Wireshark tools are needed to make it. pcapng as
scapy writes it has microsecond timestamps (the lab's pcaps have nanoseconds); packets are ordered
on the full precision before writing.
"""

from __future__ import annotations

from pathlib import Path

MERGED_NAME = "merged.pcapng"
ETHERNET = 1  # DLT_EN10MB


def raw_frames(pcap: Path) -> list[tuple[float, bytes]]:
    """(time, frame bytes) of every frame of a pcap, undissected: a big lab's runs hold 100 000 frames."""
    from scapy.utils import RawPcapReader

    with RawPcapReader(str(pcap)) as reader:
        scale = 1e-9 if reader.nano else 1e-6
        return [(meta.sec + scale * meta.usec, data) for data, meta in reader]


def merge_captures(run_dir: Path, out: Path | None = None) -> Path:
    """Merge every <vantage>.pcap of `run_dir` (every frame, IP or not) into one pcapng."""
    from scapy.packet import Raw
    from scapy.utils import PcapNgWriter

    out = out or run_dir / MERGED_NAME
    frames = []
    for pcap in sorted(run_dir.glob("*.pcap")):
        for time, data in raw_frames(pcap):
            frame = Raw(load=data)  # carries the bytes as they are: no dissection
            frame.time = time
            frame.sniffed_on = pcap.stem  # becomes the frame's pcapng interface name
            frames.append(frame)
    frames.sort(key=lambda f: f.time)  # stable: simultaneous frames keep the vantage order
    with PcapNgWriter(str(out)) as writer:
        writer.linktype = ETHERNET  # the lab's pcaps are all Ethernet; raw frames do not say it
        writer.write_header(None)
        for frame in frames:
            writer.write_packet(frame)
    return out

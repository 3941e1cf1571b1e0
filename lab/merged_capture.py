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


def merge_captures(run_dir: Path, out: Path | None = None) -> Path:
    """Merge every <vantage>.pcap of `run_dir` (every frame, IP or not) into one pcapng."""
    from scapy.layers.l2 import Ether  # noqa: F401  registers Ethernet: frames keep their link type
    from scapy.utils import PcapNgWriter, PcapReader

    out = out or run_dir / MERGED_NAME
    frames = []
    for pcap in sorted(run_dir.glob("*.pcap")):
        with PcapReader(str(pcap)) as reader:
            for frame in reader:
                frame.sniffed_on = pcap.stem  # becomes the frame's pcapng interface name
                frames.append(frame)
    frames.sort(key=lambda f: f.time)  # stable: simultaneous frames keep the vantage order
    with PcapNgWriter(str(out)) as writer:
        for frame in frames:
            writer.write(frame)
    return out

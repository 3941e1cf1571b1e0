"""All capture points of a run in one pcapng, in time order, each packet on its vantage point.

pcapng gives every packet an interface; here each vantage point is one interface named after it
(`tshark -T fields -e frame.interface_name`), so the merged file keeps where each copy of a
datagram was seen. The frames are copied as captured, with their nanosecond timestamps, by
lab.analysis.pcap_io: no Wireshark tools are needed to make the file, and no packet is rebuilt.
"""

from __future__ import annotations

from pathlib import Path

from lab.analysis.pcap_io import Capture, read_captures, write_pcapng

MERGED_NAME = "merged.pcapng"


def merge_captures(run_dir: Path, out: Path | None = None, captures: dict[str, Capture] | None = None) -> Path:
    """Merge every <vantage>.pcap of `run_dir` (every frame, IP or not) into one pcapng, ordered on
    capture time; simultaneous frames keep the order of the vantage points' names. `captures` are the
    run's pcaps if already read."""
    out = out or run_dir / MERGED_NAME
    captures = read_captures(run_dir) if captures is None else captures
    vantages = sorted(captures)
    frames = [(i, frame) for i, vantage in enumerate(vantages) for frame in captures[vantage].frames]
    frames.sort(key=lambda item: item[1].ns)  # stable
    interfaces = [(v, captures[v].linktype, captures[v].snaplen) for v in vantages]
    return write_pcapng(out, interfaces, frames)

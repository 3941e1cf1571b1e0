"""The capture marker: one Ethernet frame a capture agent sends out of each interface it captures,
once when it starts and once when it stops, so that the pcap alone proves the capture was live
for the whole run (lab.analysis.capture_check reads them back).

The frame is not IP (a local experimental EtherType, IEEE 802 0x88B5): no node's stack takes it,
the analysis of the lab's traffic never sees it, and Wireshark shows it as what it says it is. It
is addressed to the sender's own MAC, so the bridge behind the interface drops it (that address
is on the port it came from) rather than flooding it to the segment.
"""

from __future__ import annotations

ETHERTYPE = b"\x88\xb5"
MAGIC = b"natlab capture marker"
START, END = "start", "end"


def marker_frame(kind: str, vantage: str, mac: bytes) -> bytes:
    """The frame announcing `kind` (START or END) of the capture at `vantage`, from and to `mac`."""
    return mac + mac + ETHERTYPE + b" ".join((MAGIC, kind.encode(), vantage.encode()))


def parse_marker(frame: bytes) -> tuple[str, str] | None:
    """(kind, vantage) of a marker frame; None for any other frame."""
    if frame[12:14] != ETHERTYPE or not frame[14:].startswith(MAGIC + b" "):
        return None
    kind, _, vantage = frame[14 + len(MAGIC) + 1:].rstrip(b"\x00").decode(errors="replace").partition(" ")
    return kind, vantage

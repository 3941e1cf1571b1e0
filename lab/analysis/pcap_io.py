"""The two capture file formats of the lab, read and written by hand: pcap in, pcapng out.

The capture points write classic pcap (tcpdump); the report merges them into one pcapng. Both
formats are a few fixed headers (pcap: https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcap/,
pcapng: https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcapng/), and a big lab's run holds a
hundred thousand frames: going through scapy's packet objects costs seconds there, struct costs
milliseconds. Frames stay bytes; lab.analysis.packets decodes the headers the analysis reads.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

# pcap: the magic number says the byte order and whether the fraction is micro- or nanoseconds.
PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", False), b"\xa1\xb2\xc3\xd4": (">", False),
    b"\x4d\x3c\xb2\xa1": ("<", True), b"\xa1\xb2\x3c\x4d": (">", True),
}
PCAP_HEADER = 24
# pcapng: block types and options used here.
SHB, IDB, EPB = 0x0A0D0D0A, 1, 6
BYTE_ORDER_MAGIC = 0x1A2B3C4D
OPT_END, IF_NAME, IF_TSRESOL, SHB_USERAPPL = 0, 2, 9, 4
NANOSECONDS = 9  # if_tsresol: 10^-9 s per tick


class PcapError(ValueError):
    """A file that is not a whole classic pcap (foreign, empty, or cut short)."""


class Frame(NamedTuple):
    """One captured frame, as the capture point saw it."""

    time: float  # seconds since the epoch, as the analysis compares them
    ns: int  # the same instant to the nanosecond (or microsecond) the file holds, for the merge
    data: bytes  # the captured bytes
    wire_len: int  # its length on the wire (more than len(data) if the capture cut it)


class Capture(NamedTuple):
    """One pcap file: its frames in file order, its link type (1: Ethernet) and snapshot length."""

    frames: list[Frame]
    linktype: int = 1
    snaplen: int = 0  # 0: no limit


def read_pcap(path: Path) -> Capture:
    """Every frame of a classic pcap file. A file cut short (a capture stopped mid-write, a copy
    that did not finish) is refused, not read in part: the checks that pass on the absence of
    packets must not pass on the absence of the file's end."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PcapError(f"{path}: cannot be read ({exc.strerror})") from None
    if not raw:
        raise PcapError(f"{path}: empty, not a pcap file")
    if len(raw) < PCAP_HEADER or raw[:4] not in PCAP_MAGIC:
        raise PcapError(f"{path}: not a pcap file (it starts {raw[:4].hex()}, a pcap a1b2c3d4 or a1b23c4d)")
    order, nano = PCAP_MAGIC[raw[:4]]
    snaplen, linktype = struct.unpack_from(order + "II", raw, 16)
    scale, per_tick = (1e-9, 1) if nano else (1e-6, 1000)
    record = struct.Struct(order + "IIII")
    frames, offset, end = [], PCAP_HEADER, len(raw)
    while offset < end:
        if offset + 16 > end:
            raise PcapError(f"{path}: cut short: {end - offset} bytes of a record header at byte {offset}")
        sec, frac, caplen, wire_len = record.unpack_from(raw, offset)
        offset += 16
        if offset + caplen > end:
            raise PcapError(f"{path}: cut short: its last record has {end - offset} of its {caplen} bytes")
        frames.append(Frame(sec + scale * frac, sec * 1_000_000_000 + frac * per_tick,
                            raw[offset:offset + caplen], wire_len))
        offset += caplen
    return Capture(frames, linktype & 0xFFFF, snaplen)  # the link type's upper bits say FCS, not the link


def read_captures(run_dir: Path) -> dict[str, Capture]:
    """Every pcap of a run directory, keyed by vantage point (the file name without .pcap)."""
    return {path.stem: read_pcap(path) for path in sorted(run_dir.glob("*.pcap"))}


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _block(kind: int, body: bytes) -> bytes:
    length = 12 + len(body)  # body is padded to 32 bits by its makers
    return struct.pack("<II", kind, length) + body + struct.pack("<I", length)


def write_pcapng(out: Path, interfaces: list[tuple[str, int, int]], frames: Iterable[tuple[int, Frame]],
                 application: str = "natlab") -> Path:
    """Write a little-endian pcapng: one interface per (name, link type, snaplen), in that order,
    with nanosecond timestamps; then each (interface index, frame) as an enhanced packet block."""
    epb_head = struct.Struct("<IIIIIII")  # block type, length, interface, ts high, ts low, caplen, wire len
    with out.open("wb") as f:
        shb = struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1)  # version 1.0, section length unknown
        f.write(_block(SHB, shb + _option(SHB_USERAPPL, application.encode()) + _option(OPT_END, b"")))
        for name, linktype, snaplen in interfaces:
            options = _option(IF_NAME, name.encode()) + _option(IF_TSRESOL, bytes([NANOSECONDS]))
            f.write(_block(IDB, struct.pack("<HHI", linktype, 0, snaplen) + options + _option(OPT_END, b"")))
        for interface, frame in frames:
            data = frame.data
            pad = -len(data) % 4
            length = 32 + len(data) + pad
            f.write(epb_head.pack(EPB, length, interface, frame.ns >> 32, frame.ns & 0xFFFFFFFF, len(data),
                                  frame.wire_len) + data + b"\0" * pad + length.to_bytes(4, "little"))
    return out
